"""The llama.cpp text engine (GGUF models through llama-cpp-python).

One ``Llama`` context per model, driven by one worker thread: requests queue in front of
it, so concurrent clients never share a context mid-generation. The worker reuses the KV
cache for the longest prompt prefix it already holds, which makes chained turns cheap.
Tokens cross back to the event loop through the shared :class:`ModelWorker`.
"""

from __future__ import annotations

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
from oasis.core.types import GeneratedToken, SamplingParams, TokenLogprob
from oasis.engines.cpu import CpuShare
from oasis.engines.local_chat import LocalChatBackend
from oasis.engines.worker import Job, ModelWorker
from oasis.errors import ModelUnavailableError
from oasis.models.assets import resolve_source
from oasis.models.specs import ModelSpec

log = logging.getLogger(__name__)


class LlamaCppEngine:
    """A :class:`~oasis.engines.base.TextEngine` over one llama.cpp context."""

    def __init__(self, spec: ModelSpec, path: Path, settings: Settings) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.spec = spec
        n_ctx = int(spec.options.get("context_length", settings.context_length))
        threads = int(spec.options.get("threads", settings.threads))
        self._cpu = CpuShare(threads)
        self._threads = threads
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=512,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelUnavailableError(
                f"llama.cpp could not load `{spec.id}` from {path}: {exc}"
            ) from exc
        train_ctx = self._llm._model.n_ctx_train()
        self.context_length = min(self._llm.n_ctx(), train_ctx) if train_ctx > 0 else n_ctx
        model = self._llm._model
        self._vocab = llama_cpp.llama_model_get_vocab(model.model)
        self._n_vocab = self._llm.n_vocab()
        metadata = self._llm.metadata
        self.chat_template: str | None = spec.options.get("chat_template") or metadata.get(
            "tokenizer.chat_template"
        )
        self.bos_token = self._token_text(self._llm.token_bos())
        self.eos_token = self._token_text(self._llm.token_eos())
        self._pieces: dict[int, bytes] = {}
        self.max_token_bytes = self._max_token_bytes()
        self._guidance: Any = None  # llguidance tokenizer, built on first constrained request
        self._guidance_lock = threading.Lock()
        self._worker: ModelWorker[GeneratedToken] = ModelWorker(
            f"The model `{spec.id}`", settings.max_queue, settings.queue_timeout
        )

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
        if self._llm.metadata.get("tokenizer.ggml.model") not in {"llama", "gpt2"}:
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
        return str(self._llm._model.token_get_text(token))

    def piece(self, token: int) -> bytes:
        """The raw bytes of one token (control tokens give ``b""``), cached per id."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
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
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def detokenize(self, tokens: list[int]) -> str:
        """Text for ``tokens``, special tokens left out."""
        return bytes(self._llm.detokenize(tokens)).decode("utf-8", errors="replace")

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
        """Queue every run now, as one request; they run one after another on the worker."""

        def job_for(prompt: list[int], params: SamplingParams) -> Job[GeneratedToken]:
            def job(emit: Callable[[GeneratedToken], None], cancel: threading.Event) -> None:
                self._generate(prompt, params, emit, cancel)

            return job

        return list(self._worker.stream_many([job_for(p, params) for p, params in runs]))

    # --- worker thread -------------------------------------------------------------

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
        """Run as many threads as there are free CPUs (see :class:`CpuShare`)."""
        threads = self._cpu.threads()
        if threads != self._threads:
            self._llama_cpp.llama_set_n_threads(self._llm._ctx.ctx, threads, threads)
            self._threads = threads

    def _prepare_context(self, prompt: list[int]) -> list[int]:
        """Keep the cached prefix shared with ``prompt``; return the tokens left to evaluate."""
        llm = self._llm
        cached = llm.input_ids[: llm.n_tokens].tolist()
        shared = 0
        for a, b in zip(cached, prompt, strict=False):
            if a != b:
                break
            shared += 1
        # Always evaluate at least one token so fresh logits exist to sample from.
        shared = min(shared, len(prompt) - 1)
        if shared > 0 and llm._ctx.kv_cache_seq_rm(-1, shared, -1):
            llm.n_tokens = shared
            return prompt[shared:]
        llm.reset()
        return prompt

    def _logprobs(self, token: int, k: int) -> tuple[float, tuple[TokenLogprob, ...]]:
        raw = np.ctypeslib.as_array(self._llm._ctx.get_logits(), shape=(self._n_vocab,))
        return self._score(raw, token, k)

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

    def _score_prompt(
        self, prompt: list[int], k: int, emit: Callable[[GeneratedToken], None]
    ) -> None:
        """Evaluate ``prompt`` from scratch keeping every position's logits, and emit each
        prompt token scored by the position before it (the first token has no score)."""
        llm = self._llm
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        emit(GeneratedToken(prompt[0], self.piece(prompt[0]), False, prompt_token=True))
        for start in range(0, len(prompt), llm.n_batch):
            batch = prompt[start : start + llm.n_batch]
            llm._batch.set_batch(batch=batch, n_past=llm.n_tokens, logits_all=True)
            llm._ctx.decode(llm._batch)
            llm.input_ids[llm.n_tokens : llm.n_tokens + len(batch)] = batch
            llm.n_tokens += len(batch)
            rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(batch), self._n_vocab))
            for row, position in enumerate(range(start, start + len(batch))):
                if position + 1 < len(prompt):  # this position predicts the next token
                    token = prompt[position + 1]
                    logprob, top = self._score(rows[row], token, k)
                    emit(
                        GeneratedToken(
                            token, self.piece(token), False, logprob, top, prompt_token=True
                        )
                    )

    def _generate(
        self,
        prompt: list[int],
        params: SamplingParams,
        emit: Callable[[GeneratedToken], None],
        cancel: threading.Event,
    ) -> None:
        llm = self._llm
        llama_cpp = self._llama_cpp
        sampler = self._build_sampler(params)
        state = self._constraint_state(params)
        self._follow_load()
        if params.prompt_logprobs is not None:
            # Every position's logits are needed, so nothing comes from the cache.
            self._score_prompt(prompt, params.prompt_logprobs, emit)
            cached: int | None = 0
        else:
            pending = self._prepare_context(prompt)
            cached = len(prompt) - len(pending)
            # The last prompt token is evaluated on its own, as it is after a cache hit of
            # everything before it: a batch of n and a batch of one round differently, and
            # a seeded sample must not depend on what the cache held.
            if len(pending) > 1:
                llm.eval(pending[:-1])
            llm.eval(pending[-1:])
        for produced in range(params.max_tokens):
            if cancel.is_set():
                log.info("generation stopped early (consumer gone) after %d tokens", produced)
                return
            token = sampler.sample(llm._ctx, -1)
            if state is not None and not state.allows(token):
                # The usual trick: sample freely, and only when the grammar rejects the
                # token mask the logits and sample again from what it allows.
                state.mask_logits(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1))
                token = sampler.sample(llm._ctx, -1)
            end = bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
            logprob: float | None = None
            top: tuple[TokenLogprob, ...] = ()
            if params.top_logprobs is not None:
                logprob, top = self._logprobs(token, params.top_logprobs)
            piece = b"" if end else self.piece(token)
            emit(GeneratedToken(token, piece, end, logprob, top, cached))
            cached = None
            if end or llm.n_tokens + 1 >= llm.n_ctx():
                return
            if state is not None and state.advance(token, piece):
                # The constrained output is complete: nothing may follow it.
                emit(GeneratedToken(self._llm.token_eos(), b"", True))
                return
            self._follow_load()
            llm.eval([token])

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
                    pieces, special, self._llm.token_eos(), fptr or 0, self._vocab
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
        self._llm.close()


def create_engine(spec: ModelSpec, settings: Settings) -> LocalChatBackend:
    """A GGUF chat model: the llama.cpp token engine under the local chat backend."""
    path = resolve_source(spec, settings.data_dir)
    return LocalChatBackend(LlamaCppEngine(spec, path, settings))
