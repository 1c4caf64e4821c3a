"""The legacy Completions API: a raw prompt continued, through the same generation core.

No chat template is applied: the prompt text (with the model's BOS) or token ids go to
the model as they are, which is what evaluation harnesses and completion-style tools send.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace

from openai.types import Completion, CompletionChoice
from openai.types.completion_choice import Logprobs

from oasis.caller import UsageEntry, record_usage
from oasis.core.events import Finished, PromptScored, TextDelta
from oasis.core.types import GeneratedToken, SamplingParams
from oasis.errors import InvalidRequestError, UnsupportedError
from oasis.ids import new_id
from oasis.services.generation import GenerationCore, PreparedPrompt
from oasis.services.outputs import usage
from oasis.services.sampling import choice_params
from oasis.services.streams import Interleaved, begun
from oasis.wire.completions import CompletionRequest

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint
# Prompts × n per request. They are queued together on one model, so a huge request
# would hold it for everyone else; OpenAI caps a prompt list at 2048 entries too.
MAX_CHOICES = 2048


@dataclass(frozen=True)
class _Run:
    """One choice to generate: its index, its prompt and its sampling parameters."""

    index: int
    prompt: PreparedPrompt
    params: SamplingParams


def _token_text(piece: bytes) -> str:
    """A token as the old API spells it: its text, or ``bytes:\\xNN…`` for part of a
    character (as OpenAI writes a token that splits one)."""
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in piece)


class _LegacyLogprobs:
    """The old ``logprobs`` shape, built token by token: parallel lists plus offsets.

    ``text_offset`` counts characters of the returned text. A token that starts inside a
    character (its bytes split one) is placed where that character starts. With ``echo``
    the prompt's tokens come first, the first of them with no logprob (``null``, as
    OpenAI sends it).
    """

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tokens: list[str] = []
        self.token_logprobs: list[float | None] = []
        self.top_logprobs: list[dict[str, float] | None] = []
        self.text_offset: list[int] = []

    def add(self, tokens: list[GeneratedToken]) -> Logprobs:
        """Record ``tokens``; the entries for just these (what a stream chunk carries)."""
        start = len(self.tokens)
        for token in tokens:
            text = _token_text(token.piece)
            self.tokens.append(text)
            self.text_offset.append(self.offset)
            self.offset += len(self._decoder.decode(token.piece))
            if token.prompt_token and token.logprob is None:  # the prompt's first token
                self.token_logprobs.append(None)
                self.top_logprobs.append(None)
                continue
            chosen = token.logprob if token.logprob is not None else -9999.0
            self.token_logprobs.append(chosen)
            # The sampled token is always listed, as OpenAI does, beside the top k.
            top = {_token_text(alt.piece): alt.logprob for alt in token.top_logprobs}
            top.setdefault(text, chosen)
            self.top_logprobs.append(top)
        return self._slice(start)

    def after_prompt(self, echo: str) -> None:
        """Generated tokens start right after the echoed prompt text."""
        self.offset = len(echo)
        self._decoder.reset()

    def _slice(self, start: int) -> Logprobs:
        # Unvalidated: the prompt's first entry is null, which the SDK's type does not allow.
        return Logprobs.model_construct(
            tokens=self.tokens[start:],
            token_logprobs=self.token_logprobs[start:],
            top_logprobs=self.top_logprobs[start:],
            text_offset=self.text_offset[start:],
        )


def _new_id() -> str:
    return new_id("cmpl", nbytes=12, sep="-")


class _CompletionFold:
    """A whole completion, folded from the chunks its stream would send."""

    def __init__(self, *, logprobs: bool) -> None:
        self._logprobs = logprobs
        self._text: dict[int, list[str]] = {}
        self._entries: dict[int, list[Logprobs]] = {}
        self._finish: dict[int, str] = {}
        self._last: Completion | None = None

    def add(self, chunk: Completion) -> None:
        if chunk.usage is not None:
            self._last = chunk
        for choice in chunk.choices:
            self._text.setdefault(choice.index, []).append(choice.text)
            if choice.logprobs is not None:
                self._entries.setdefault(choice.index, []).append(choice.logprobs)
            if choice.finish_reason is not None:
                self._finish[choice.index] = choice.finish_reason

    def _logprobs_of(self, index: int) -> Logprobs:
        parts = self._entries.get(index, [])
        # Unvalidated, like the stream's: the prompt's first entry may be null.
        return Logprobs.model_construct(
            tokens=[t for p in parts for t in p.tokens or []],
            token_logprobs=[t for p in parts for t in p.token_logprobs or []],
            top_logprobs=[t for p in parts for t in p.top_logprobs or []],
            text_offset=[t for p in parts for t in p.text_offset or []],
        )

    def result(self) -> Completion:
        """The completion; the chunks must have included the final usage chunk."""
        assert self._last is not None
        choices = [
            CompletionChoice(
                index=index,
                text="".join(self._text[index]),
                finish_reason=self._finish[index],  # type: ignore[arg-type]
                logprobs=self._logprobs_of(index) if self._logprobs else None,
            )
            for index in sorted(self._text)
        ]
        return Completion(
            id=self._last.id,
            object="text_completion",
            created=self._last.created,
            model=self._last.model,
            choices=choices,
            usage=self._last.usage,
            system_fingerprint=self._last.system_fingerprint,
        )


class CompletionService:
    """Runs legacy completions, plain or streamed: one chunk stream, folded when not
    streamed."""

    def __init__(self, core: GenerationCore) -> None:
        self.core = core

    async def _runs(self, request: CompletionRequest) -> list[_Run]:
        if request.suffix:
            raise UnsupportedError(
                "`suffix` (insertion) is not supported by this server.", param="suffix"
            )
        n = request.n or 1
        if request.best_of is not None and request.best_of != n:
            raise UnsupportedError(
                "`best_of` other than `n` is not supported: every generated choice is returned.",
                param="best_of",
            )
        prompts = request.prompts
        if not prompts:
            raise InvalidRequestError("'prompt' is empty.", param="prompt", code="invalid_value")
        if len(prompts) * n > MAX_CHOICES:
            raise InvalidRequestError(
                f"{len(prompts)} prompts × n={n} asks for {len(prompts) * n} completions; "
                f"at most {MAX_CHOICES} are allowed per request.",
                param="prompt" if len(prompts) > MAX_CHOICES else "n",
                code="invalid_value",
            )
        runs: list[_Run] = []
        for p, prompt in enumerate(prompts):
            prepared = await self.core.prepare_text(request.model, prompt)
            budget = self.core.max_new_tokens(
                prepared,
                DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens,
            )
            params = choice_params(
                request, prepared.backend.vocab_size, budget, request.logprobs, n
            )
            if request.echo and request.logprobs is not None:
                # Scoring a prompt (as evaluation harnesses do): its tokens' logprobs too.
                if not prepared.backend.supports_prompt_logprobs:
                    raise UnsupportedError(
                        f"`{prepared.model.spec.id}` cannot score a prompt: `echo` with "
                        "`logprobs` is not supported for it.",
                        param="echo",
                    )
                params = [replace(p, prompt_logprobs=request.logprobs) for p in params]
            runs += [_Run(p * n + i, prepared, choice) for i, choice in enumerate(params)]
        return runs

    def _start(self, request: CompletionRequest, runs: list[_Run]) -> Interleaved:
        """Every choice of every prompt queued now, together (a full queue answers 503)."""
        streams = self.core.generate_all([(r.prompt, r.params) for r in runs], request.stop_list)
        return Interleaved(streams)

    async def create(self, request: CompletionRequest) -> Completion:
        """Every choice of every prompt: the stream's chunks, folded."""
        runs = await self._runs(request)
        fold = _CompletionFold(logprobs=request.logprobs is not None)
        chunks = self._chunks(request, runs, self._start(request, runs), include_usage=True)
        try:
            async for chunk in chunks:
                fold.add(chunk)
        finally:
            await chunks.aclose()
        return fold.result()

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Completion]:
        """Validate, prepare and queue now (errors are still HTTP errors), then stream."""
        runs = await self._runs(request)
        events = self._start(request, runs)
        return await begun(self._chunks(request, runs, events, include_usage=request.include_usage))

    async def _chunks(
        self,
        request: CompletionRequest,
        runs: list[_Run],
        events: Interleaved,
        *,
        include_usage: bool,
    ) -> AsyncGenerator[Completion, None]:
        completion_id, created = _new_id(), int(time.time())
        model = runs[0].prompt.model.name
        fingerprint = runs[0].prompt.fingerprint

        # With include_usage every chunk says `usage: null` until the last, as chat's do.
        extra = {"usage": None} if include_usage else {}

        def chunk(choice: CompletionChoice) -> Completion:
            return Completion(
                id=completion_id,
                object="text_completion",
                created=created,
                model=model,
                choices=[choice],
                system_fingerprint=fingerprint,
                **extra,
            )

        def part(index: int, text: str, logprobs: Logprobs | None = None) -> Completion:
            # Built unvalidated: OpenAI sends `finish_reason: null` until a choice ends,
            # which the SDK's type (a required Literal) does not allow for.
            return chunk(
                CompletionChoice.model_construct(
                    index=index, text=text, finish_reason=None, logprobs=logprobs
                )
            )

        # Prompt tokens as the backend counted them when it finished (a remote engine
        # counts only then); each prompt counts once, as its first choice found it.
        completion_tokens = cached = prompt_tokens = 0
        n = request.n or 1
        want = request.logprobs is not None
        echoes = [run.prompt.text if request.echo else "" for run in runs]
        scoring = [run.params.prompt_logprobs is not None for run in runs]
        entries = [
            _LegacyLogprobs(0 if s else len(e)) for e, s in zip(echoes, scoring, strict=True)
        ]
        # An echo goes out with the run's first event, so nothing is sent before the
        # generation left the queue; a scored prompt's echo goes with its logprobs.
        echoed = [not e or s for e, s in zip(echoes, scoring, strict=True)]
        try:
            async for i, event in events:
                index, logprobs = runs[i].index, entries[i]
                if not echoed[i]:
                    echoed[i] = True
                    yield part(index, echoes[i])
                if isinstance(event, PromptScored):
                    scored = logprobs.add(event.tokens)
                    logprobs.after_prompt(echoes[i])
                    yield part(index, echoes[i], scored)
                elif isinstance(event, TextDelta):
                    if want and event.tokens:
                        yield part(index, event.text, logprobs.add(event.tokens))
                    elif event.text:
                        yield part(index, event.text)
                elif isinstance(event, Finished):
                    completion_tokens += event.completion_tokens
                    if index % n == 0:
                        cached += event.cached_tokens
                        prompt_tokens += event.prompt_tokens
                    yield chunk(
                        CompletionChoice(
                            index=index,
                            text="",
                            finish_reason=event.finish_reason,  # type: ignore[arg-type]
                            logprobs=None,
                        )
                    )
        finally:
            await events.aclose()  # every choice stops when the client goes or one fails
        if include_usage:
            yield Completion(
                id=completion_id,
                object="text_completion",
                created=created,
                model=model,
                choices=[],
                usage=usage(prompt_tokens, completion_tokens, cached_tokens=cached),
                system_fingerprint=fingerprint,
            )
        # After the last chunk, so the client does not wait for the write.
        await record_usage(
            UsageEntry(
                "completions",
                runs[0].prompt.model.spec.id,
                input_tokens=prompt_tokens,
                cached_tokens=cached,
                output_tokens=completion_tokens,
            )
        )
