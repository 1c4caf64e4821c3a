"""The llama.cpp text engine (GGUF models through llama-cpp-python).

One llama.cpp context per model with ``parallel`` sequences. Each running generation has a
worker thread and a slot (a sequence) of its own; a :class:`StepScheduler` decodes every
active sequence in one batch per step (continuous batching). A finished slot keeps its KV
cells, and a new generation takes the free slot holding the longest prefix of its prompt,
which makes chained turns cheap even with other clients in between. Tokens cross back to
the event loop through the shared :class:`ModelWorker`; requests beyond ``parallel`` queue
there.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oasis.config import Settings
from oasis.core.constraints import ConstraintState, tokenizer_from_pieces
from oasis.core.harmony import speaks_harmony
from oasis.core.types import GeneratedToken, SamplingParams, TokenLogprob
from oasis.engines.cpu import CpuShare
from oasis.engines.fanout import fan_out
from oasis.engines.local_chat import LocalChatBackend
from oasis.engines.media import ImageRun, MediaPrompt, Projector
from oasis.engines.scheduler import SharedPrompt, Slot, SlotPool, StepScheduler, common_prefix
from oasis.engines.worker import Job, ModelWorker, in_background
from oasis.errors import ModelUnavailableError, OasisError, PreemptedError
from oasis.models.assets import resolve_source
from oasis.models.specs import ModelSpec

log = logging.getLogger(__name__)

_N_BATCH = 512  # tokens per llama_decode (and per prompt chunk when a sequence is alone)
_SHARED_CHUNK = 64  # prompt tokens per step while other sequences are decoding


def _flash_attention(spec: ModelSpec, llama_cpp: Any) -> int:
    """The context's flash-attention setting from the model option ``flash_attention``.

    ``auto`` (the default, as llama.cpp's own server has it) turns it on wherever the
    backend supports it, the CPU included: there it decodes several sequences about a
    third faster than the plain attention graph (``benchmarks/concurrency.py``).
    """
    value = spec.options.get("flash_attention", "auto")
    choices = {
        "auto": llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
        True: llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
        False: llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
    }
    if value not in choices:
        raise ModelUnavailableError(
            f"`{spec.id}`: the option `flash_attention` must be true, false or \"auto\"."
        )
    return int(choices[value])


class LlamaCppEngine:
    """A :class:`~oasis.engines.base.TextEngine` over one llama.cpp context.

    The context holds ``parallel`` sequences (a model option, else the global setting),
    each with ``context_length`` positions of its own; up to that many generations run at
    once, decoded together by a :class:`~oasis.engines.scheduler.StepScheduler`.
    """

    def __init__(self, spec: ModelSpec, path: Path, settings: Settings) -> None:
        import llama_cpp
        from llama_cpp import _internals
        from llama_cpp._logger import set_verbose

        self._llama_cpp = llama_cpp
        self.spec = spec
        n_ctx = int(spec.options.get("context_length", settings.context_length))
        threads = int(spec.options.get("threads", settings.threads))
        parallel = int(spec.options.get("parallel", settings.parallel))
        if parallel < 1:
            raise ModelUnavailableError(f"`{spec.id}`: the option `parallel` must be 1 or more.")
        self._cpu = CpuShare(threads)
        self._threads = threads
        llama_cpp.llama_backend_init()
        set_verbose(False)  # llama.cpp's load and graph logs, as `Llama(verbose=False)` does
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = 0
        ctx_params = llama_cpp.llama_context_default_params()
        # One KV stream per sequence (not a unified cache): a sequence's cells and
        # attention never mix with another's, so batching leaves its numbers unchanged.
        ctx_params.n_ctx = n_ctx * parallel
        ctx_params.n_seq_max = parallel
        ctx_params.kv_unified = False
        ctx_params.n_batch = ctx_params.n_ubatch = _N_BATCH
        ctx_params.n_threads = ctx_params.n_threads_batch = threads
        ctx_params.flash_attn_type = _flash_attention(spec, llama_cpp)
        try:
            self._model = _internals.LlamaModel(
                path_model=str(path), params=model_params, verbose=False
            )
            self._ctx = _internals.LlamaContext(model=self._model, params=ctx_params, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelUnavailableError(
                f"llama.cpp could not load `{spec.id}` from {path}: {exc}"
            ) from exc
        self._n_ctx_seq = llama_cpp.llama_n_ctx_seq(self._ctx.ctx)
        train_ctx = self._model.n_ctx_train()
        self.context_length = min(self._n_ctx_seq, train_ctx) if train_ctx > 0 else n_ctx
        self._vocab = llama_cpp.llama_model_get_vocab(self._model.model)
        self._n_vocab = self._model.n_vocab()
        self._metadata = self._model.metadata()
        self.chat_template: str | None = spec.options.get("chat_template") or self._metadata.get(
            "tokenizer.chat_template"
        )
        self.bos_token = self._token_text(self._model.token_bos())
        self.eos_token = self._token_text(self._model.token_eos())
        self._pieces: dict[int, bytes] = {}
        # gpt-oss marks its channels with control tokens; their text is what the harmony
        # parser reads, so a harmony model's pieces keep them (others drop them).
        self._special_pieces = speaks_harmony(self.chat_template or "")
        self.max_token_bytes = self._max_token_bytes()
        self._guidance: Any = None  # llguidance tokenizer, built on first constrained request
        self._guidance_lock = threading.Lock()
        self._projector = self._load_projector(spec, threads)
        # Images in prompts (see :mod:`oasis.engines.media`): with a projector only.
        self.supports_images = self._projector is not None
        self._slots = SlotPool(parallel)
        self._batch = llama_cpp.llama_batch_init(_N_BATCH, 0, 1)
        self._scheduler = StepScheduler(
            spec.id, self._decode_batch, _N_BATCH, before_step=self._follow_load
        )
        # A batch line may take every sequence: a live arrival makes one yield (see
        # ModelWorker), at its next step (StepScheduler.decode).
        self._worker: ModelWorker[GeneratedToken] = ModelWorker(
            f"The model `{spec.id}`",
            settings.max_queue,
            settings.queue_timeout,
            workers=parallel,
            yields=True,
        )

    def _load_projector(self, spec: ModelSpec, threads: int) -> Projector | None:
        """The multimodal projector the spec names (``mmproj``), loaded; None without one."""
        named = spec.options.get("mmproj")
        if not named:
            return None
        path = Path(str(named)).expanduser()
        if not path.is_file():
            raise ModelUnavailableError(f"`{spec.id}`: the projector {path} does not exist.")
        return Projector(path, self._model.model, threads)

    def tokenize_media(
        self, text: str, images: Sequence[bytes], params: Sequence[str]
    ) -> list[int]:
        """Tokens for ``text`` with ``images`` where its media markers are (a
        :class:`~oasis.engines.media.MediaPrompt`); only with a projector."""
        assert self._projector is not None, "a model without a projector takes no images"
        return self._projector.tokenize(text, images, params)

    def _max_token_bytes(self) -> int | None:
        """The longest text one token covers: its piece, or its markup for special tokens.

        Byte-level BPE and SentencePiece tokens split the text into pieces that join back
        into it, so the longest piece bounds what one token covers. Other vocabularies
        normalize (WordPiece, Unigram), and special tokens marked lstrip / rstrip swallow
        the whitespace beside them: for those no bound holds.
        """
        llama_cpp = self._llama_cpp
        # "llama" is SentencePiece, "gpt2" byte-level BPE; llama.cpp's other BPE variants
        # (such as "whitespace") drop text.
        if self._metadata.get("tokenizer.ggml.model") not in {"llama", "gpt2"}:
            return None
        if llama_cpp.llama_vocab_type(self._vocab) not in {
            llama_cpp.LLAMA_VOCAB_TYPE_SPM,
            llama_cpp.LLAMA_VOCAB_TYPE_BPE,
        }:
            return None
        strips = llama_cpp.LLAMA_TOKEN_ATTR_LSTRIP | llama_cpp.LLAMA_TOKEN_ATTR_RSTRIP
        longest = 1
        buf = ctypes.create_string_buffer(256)
        for token in range(self._n_vocab):
            if llama_cpp.llama_vocab_get_attr(self._vocab, token) & strips:
                return None
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, 256, 0, True)
            longest = max(longest, abs(n))  # a negative result is the size the piece needs
        return longest

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return str(self._model.token_get_text(token))

    def piece(self, token: int) -> bytes:
        """The raw bytes of one token, cached per id (control tokens give ``b""``, except
        for a harmony model, whose markers are read)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._llama_cpp.llama_token_to_piece(
                self._vocab, token, buf, size, 0, self._special_pieces
            )
            if n >= 0:
                break
            size = -n  # a negative result is the size the piece needs
        piece = buf.raw[:n]
        self._pieces[token] = piece
        return piece

    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Tokens for ``text``; special-token markup in it is recognised.

        Safe from any thread, beside the worker's decoding: llama.cpp's tokenizer only
        reads the vocabulary, with a session of its own per call.
        """
        return list(self._model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def detokenize(self, tokens: list[int]) -> str:
        """Text for ``tokens``, special tokens left out."""
        return bytes(self._model.detokenize(tokens)).decode("utf-8", errors="replace")

    def vocab_size(self) -> int:
        return self._n_vocab

    def generate(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[GeneratedToken]:
        """Sample after ``prompt``; see :class:`~oasis.engines.base.TextEngine`.

        The job is queued at once, so a full queue raises ``OverloadedError`` here.
        """
        return self.generate_many([(prompt, params)])[0]

    def generate_many(
        self, runs: Sequence[tuple[list[int], SamplingParams]]
    ) -> list[AsyncIterator[GeneratedToken]]:
        """Queue every run now, as one request; up to ``parallel`` runs decode together.

        Greedy runs that repeat an earlier run (the choices of one prompt at temperature
        0) are decoded once and share its tokens: they would be the same text anyway.
        """
        unique: list[tuple[list[int], SamplingParams]] = []
        first_of: list[int] = []  # for each run, the unique run it reads
        for prompt, params in runs:
            same = next(
                (
                    i
                    for i, (p, q) in enumerate(unique)
                    if params.temperature <= 0.0 and q == params and p == prompt
                ),
                None,
            )
            if same is None:
                same = len(unique)
                unique.append((prompt, params))
            first_of.append(same)
        streams = self._queue_runs(unique)
        readers: list[list[AsyncIterator[GeneratedToken]]] = [
            fan_out(stream, first_of.count(i)) if first_of.count(i) > 1 else [stream]
            for i, stream in enumerate(streams)
        ]
        return [readers[i].pop(0) for i in first_of]

    def _queue_runs(
        self, runs: Sequence[tuple[list[int], SamplingParams]]
    ) -> list[AsyncIterator[GeneratedToken]]:
        share = SharedPrompt() if len(runs) > 1 else None

        def job_for(prompt: list[int], params: SamplingParams) -> Job[GeneratedToken]:
            def job(emit: Callable[[GeneratedToken], None], cancel: threading.Event) -> None:
                self._generate(prompt, params, emit, cancel, share)

            return job

        return list(self._worker.stream_many([job_for(p, params) for p, params in runs]))

    # --- worker threads (one per running sequence) --------------------------------

    def _build_sampler(self, params: SamplingParams) -> Any:
        from llama_cpp import _internals

        sampler = _internals.LlamaSampler()
        if params.logit_bias:
            sampler.add_logit_bias(self._n_vocab, params.logit_bias)
        if params.presence_penalty or params.frequency_penalty:
            sampler.add_penalties(
                self._n_vocab,
                penalty_last_n=params.max_tokens,
                penalty_repeat=1.0,
                penalty_freq=params.frequency_penalty,
                penalty_present=params.presence_penalty,
            )
        if params.temperature <= 0.0:
            sampler.add_greedy()
        else:
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            if params.top_p < 1.0:
                sampler.add_top_p(params.top_p, 1)
            sampler.add_temp(params.temperature)
            sampler.add_dist(seed & 0xFFFFFFFF)
        return sampler

    def _follow_load(self) -> None:
        """Run as many threads as there are free CPUs (see :class:`CpuShare`).

        Called by the scheduler thread before each step."""
        threads = self._cpu.threads()
        if threads != self._threads:
            self._llama_cpp.llama_set_n_threads(self._ctx.ctx, threads, threads)
            self._threads = threads

    def _decode_batch(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One ``llama_decode`` of ``(slot, token, position, wants_logits)`` entries
        (on the scheduler thread)."""
        batch = self._batch
        batch.n_tokens = len(entries)
        for i, (slot, token, position, wanted) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = slot
            batch.logits[i] = wanted
        status = self._llama_cpp.llama_decode(self._ctx.ctx, batch)
        if status != 0:
            raise OasisError(f"llama.cpp could not decode a batch (status {status}).")

    def _row_logits(self, row: int) -> np.ndarray[Any, Any]:
        pointer = self._llama_cpp.llama_get_logits_ith(self._ctx.ctx, row)
        return np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))

    def _score(
        self, raw: np.ndarray[Any, Any], token: int, k: int
    ) -> tuple[float, tuple[TokenLogprob, ...]]:
        """``token``'s logprob under one position's logits, and the ``k`` likeliest."""
        logits = raw.astype(np.float64)
        peak = logits.max()
        logsumexp = peak + np.log(np.exp(logits - peak).sum())
        # Clamped: masked (grammar-forbidden) tokens have -inf, which JSON cannot carry.
        chosen = max(float(logits[token] - logsumexp), -9999.0)
        if k <= 0:
            return chosen, ()
        top = np.argpartition(-logits, k)[:k]
        top = top[np.argsort(-logits[top])]
        return chosen, tuple(
            TokenLogprob(int(t), self.piece(int(t)), max(float(logits[t] - logsumexp), -9999.0))
            for t in top
        )

    def _eval(self, slot: Slot, tokens: list[int], *, chunk: int = _N_BATCH) -> int:
        """Evaluate ``tokens`` after what ``slot`` holds, in chunks of at most ``chunk``
        (each with logits for its last token only); the batch row of the last one."""
        row = -1
        for start in range(0, len(tokens), chunk):
            piece = tokens[start : start + chunk]
            outputs = [False] * (len(piece) - 1) + [True]
            row = self._scheduler.decode(slot.index, piece, len(slot.tokens), outputs)[-1]
            slot.tokens.extend(piece)
        return row

    def _prefill(self, slot: Slot, prompt: list[int], source: Slot | None) -> int:
        """Bring ``slot`` to hold ``prompt``; returns how many prompt tokens came from a
        cache, and leaves the last prompt token's logits to sample from.

        The slot keeps the longest prefix it shares with ``prompt`` (it was picked for
        that). With ``source``, the slot of another choice of the same request that has
        evaluated the prompt, its cells are copied rather than evaluated again.
        """
        scheduler = self._scheduler
        body = prompt[:-1]
        shared: int = scheduler.call(lambda: self._keep_prefix(slot, prompt))
        if source is not None and shared < len(body):
            copied: int = scheduler.call(lambda: self._copy_prefix(source, slot, body))
            shared = max(shared, copied)
        # While others decode, a long prompt goes in small chunks so that their tokens
        # keep coming (chunked prefill); alone, in full batches as before batching.
        chunk = _N_BATCH if scheduler.active <= 1 else _SHARED_CHUNK
        runs = prompt.runs if isinstance(prompt, MediaPrompt) else ()
        at = shared
        for run in runs:  # images (placeholder runs) are evaluated by the projector
            if run.start < at or run.start >= len(body):
                continue
            if run.start > at:
                self._eval(slot, body[at : run.start], chunk=chunk)
            self._eval_image(slot, run, body[run.start : run.start + run.length])
            at = run.start + run.length
        if at < len(body):
            self._eval(slot, body[at:], chunk=chunk)
        return shared

    def _eval_image(self, slot: Slot, run: ImageRun, placeholders: list[int]) -> None:
        """Evaluate one image of a prompt after what ``slot`` holds (on the scheduler
        thread); the slot records its placeholders, so a later prompt with the same image
        there shares them as a prefix."""
        projector = self._projector
        assert projector is not None and run.start == len(slot.tokens)
        position = len(slot.tokens)
        self._scheduler.call(
            lambda: projector.eval(self._ctx.ctx, run, position, slot.index, _N_BATCH),
            decodes=True,
        )
        slot.tokens.extend(placeholders)

    def _keep_prefix(self, slot: Slot, prompt: list[int]) -> int:
        """(Scheduler thread.) Trim ``slot``'s cells to the prefix it shares with ``prompt``.

        At least the last prompt token is always evaluated afresh, so a seeded sample
        never depends on what the cache held (its logits are always those of a batch of
        one, whatever came before).
        """
        shared = min(common_prefix(slot.tokens, prompt), len(prompt) - 1)
        if isinstance(prompt, MediaPrompt):
            run = prompt.run_at(shared)
            if run is not None:
                shared = run.start  # half an image cannot be kept: it is evaluated whole
        memory = self._llama_cpp.llama_get_memory(self._ctx.ctx)
        if not self._llama_cpp.llama_memory_seq_rm(memory, slot.index, shared, -1):
            self._llama_cpp.llama_memory_seq_rm(memory, slot.index, -1, -1)
            shared = 0
        del slot.tokens[shared:]
        return shared

    def _copy_prefix(self, source: Slot, slot: Slot, body: list[int]) -> int:
        """(Scheduler thread.) Copy ``source``'s cells into ``slot`` and keep the part of
        ``body`` they cover; 0 (and nothing copied) when ``source`` no longer holds it."""
        have = min(common_prefix(source.tokens, body), len(body))
        if have < len(body):
            return 0
        llama_cpp = self._llama_cpp
        memory = llama_cpp.llama_get_memory(self._ctx.ctx)
        llama_cpp.llama_memory_seq_rm(memory, slot.index, -1, -1)
        # Across KV streams llama.cpp copies whole sequences; the tail is dropped after.
        llama_cpp.llama_memory_seq_cp(memory, source.index, slot.index, -1, -1)
        llama_cpp.llama_memory_seq_rm(memory, slot.index, have, -1)
        slot.tokens[:] = body[:have]
        return have

    def _score_prompt(
        self, slot: Slot, prompt: list[int], k: int, emit: Callable[[GeneratedToken], None]
    ) -> int:
        """Evaluate ``prompt`` from scratch keeping every position's logits, and emit each
        prompt token scored by the position before it (the first token has no score).
        Returns the batch row of the last position's logits."""
        scheduler = self._scheduler
        scheduler.call(lambda: self._keep_prefix(slot, prompt[:1]))  # drops every cell
        emit(GeneratedToken(prompt[0], self.piece(prompt[0]), False, prompt_token=True))
        row = -1
        for start in range(0, len(prompt), _N_BATCH):
            piece = prompt[start : start + _N_BATCH]
            rows = scheduler.decode(slot.index, piece, len(slot.tokens), [True] * len(piece))
            slot.tokens.extend(piece)
            for offset, row in enumerate(rows):
                position = start + offset
                if position + 1 < len(prompt):  # this position predicts the next token
                    token = prompt[position + 1]
                    logprob, top = self._score(self._row_logits(row), token, k)
                    emit(
                        GeneratedToken(
                            token, self.piece(token), False, logprob, top, prompt_token=True
                        )
                    )
        return row

    def _generate(
        self,
        prompt: list[int],
        params: SamplingParams,
        emit: Callable[[GeneratedToken], None],
        cancel: threading.Event,
        share: SharedPrompt | None = None,
    ) -> None:
        llama_cpp = self._llama_cpp
        sampler = self._build_sampler(params)
        state = self._constraint_state(params)  # before joining: the first takes a second
        slot = self._slots.acquire(prompt, params.cache_key)
        scheduler = self._scheduler
        try:
            # Waiting for another choice happens before joining: no step waits for us.
            source = share.follow(slot) if share is not None else None
            scheduler.join(background=in_background())
        except BaseException:
            self._slots.release(slot)
            raise
        try:
            if params.prompt_logprobs is not None:
                # Every position's logits are needed, so nothing comes from the cache.
                row = self._score_prompt(slot, prompt, params.prompt_logprobs, emit)
                cached: int | None = 0
            else:
                cached = self._prefill(slot, prompt, source)
                if share is not None:
                    share.ready()
                row = self._eval(slot, prompt[-1:])
            for produced in range(params.max_tokens):
                if cancel.is_set():
                    log.info("generation stopped early (consumer gone) after %d tokens", produced)
                    return
                token = sampler.sample(self._ctx, row)
                if state is not None and not state.allows(token):
                    # The usual trick: sample freely, and only when the grammar rejects the
                    # token mask the logits and sample again from what it allows.
                    state.mask_logits(llama_cpp.llama_get_logits_ith(self._ctx.ctx, row))
                    token = sampler.sample(self._ctx, row)
                end = bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
                logprob: float | None = None
                top: tuple[TokenLogprob, ...] = ()
                if params.top_logprobs is not None:
                    logprob, top = self._score(self._row_logits(row), token, params.top_logprobs)
                piece = b"" if end else self.piece(token)
                emit(GeneratedToken(token, piece, end, logprob, top, cached))
                cached = None
                if end or len(slot.tokens) + 1 >= self._n_ctx_seq:
                    return
                if state is not None and state.advance(token, piece):
                    # The constrained output is complete: nothing may follow it.
                    emit(GeneratedToken(self._model.token_eos(), b"", True))
                    return
                row = self._eval(slot, [token])
        except PreemptedError:
            raise  # between steps: the cells hold what slot.tokens says (the rerun may reuse them)
        except BaseException:
            slot.tokens.clear()  # what its cells hold is no longer known
            raise
        finally:
            if share is not None:
                share.ready()  # a first choice that failed must not leave the others waiting
            scheduler.leave()
            self._slots.release(slot)

    def _constraint_state(self, params: SamplingParams) -> ConstraintState | None:
        if params.constraint is None:
            return None
        return ConstraintState(self._guidance_tokenizer(), params.constraint, self._n_vocab)

    def _guidance_tokenizer(self) -> Any:
        """The llguidance view of this vocabulary (about a second to build; cached)."""
        with self._guidance_lock:
            if self._guidance is None:
                llama_cpp = self._llama_cpp
                pieces: list[bytes] = []
                special: list[bool] = []
                for token in range(self._n_vocab):
                    attr = llama_cpp.llama_vocab_get_attr(self._vocab, token)
                    is_control = bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL)
                    special.append(is_control)
                    pieces.append(self._special_piece(token) if is_control else self.piece(token))
                fptr = ctypes.cast(llama_cpp.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
                self._guidance = tokenizer_from_pieces(
                    pieces, special, self._model.token_eos(), fptr or 0, self._vocab
                )
            return self._guidance

    def _special_piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, 256, 0, True)
        return buf.raw[: max(n, 0)]

    @property
    def load(self) -> tuple[int, int]:
        """(requests waiting, sequences running) on this model's worker."""
        return self._worker.load

    async def close(self) -> None:
        await self._worker.close()
        await asyncio.to_thread(self._scheduler.close)
        self._llama_cpp.llama_batch_free(self._batch)
        if self._projector is not None:
            self._projector.close()
        self._ctx.close()
        self._model.close()


def create_engine(spec: ModelSpec, settings: Settings) -> LocalChatBackend:
    """A GGUF chat model: the llama.cpp token engine under the local chat backend."""
    path = resolve_source(spec, settings.data_dir)
    return LocalChatBackend(LlamaCppEngine(spec, path, settings))
