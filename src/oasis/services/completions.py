"""The legacy Completions API: a raw prompt continued, through the same generation core.

No chat template is applied: the prompt text (with the model's BOS) or token ids go to
the model as they are, which is what evaluation harnesses and completion-style tools send.
"""

from __future__ import annotations

import codecs
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from openai.types import Completion, CompletionChoice
from openai.types.completion_choice import Logprobs

from oasis.engines.base import GeneratedToken, SamplingParams
from oasis.errors import InvalidRequestError, UnsupportedError
from oasis.services.chat import usage
from oasis.services.generation import (
    Finished,
    GenerationCore,
    PreparedPrompt,
    PromptScored,
    TextDelta,
)
from oasis.services.sampling import choice_params
from oasis.services.streaming import begun
from oasis.wire.completions import CompletionRequest

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint
# Prompts × n per request. They run one after another on one model, so a huge request
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

    def all(self) -> Logprobs:
        return self._slice(0)


def _new_id() -> str:
    return f"cmpl-{secrets.token_hex(12)}"


class CompletionService:
    """Runs legacy completions, plain or streamed."""

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
            params = choice_params(request, prepared.engine, budget, request.logprobs, n)
            if request.echo and request.logprobs is not None:
                # Scoring a prompt (as evaluation harnesses do): its tokens' logprobs too.
                params = [replace(p, prompt_logprobs=request.logprobs) for p in params]
            runs += [_Run(p * n + i, prepared, choice) for i, choice in enumerate(params)]
        return runs

    def _prompt_tokens(self, runs: list[_Run], n: int) -> int:
        return sum(len(run.prompt.tokens) for run in runs[::n])  # each prompt counts once

    async def create(self, request: CompletionRequest) -> Completion:
        """Every choice of every prompt, generated before returning."""
        runs = await self._runs(request)
        choices: list[CompletionChoice] = []
        completion_tokens = cached = 0
        n = request.n or 1
        want = request.logprobs is not None
        for run in runs:
            echo = run.prompt.text if request.echo else ""
            logprobs = _LegacyLogprobs(0 if run.params.prompt_logprobs is not None else len(echo))
            finished: Finished | None = None
            async for event in self.core.generate(
                run.prompt, run.params, request.stop_list, admitted=run is not runs[0]
            ):
                if isinstance(event, PromptScored):
                    logprobs.add(event.tokens)
                    logprobs.after_prompt(echo)
                elif isinstance(event, TextDelta) and want:  # entries only when asked for
                    logprobs.add(event.tokens)
                elif isinstance(event, Finished):
                    finished = event
            assert finished is not None
            completion_tokens += finished.completion_tokens
            if run.index % n == 0:  # a prompt counts once, as its first choice found it
                cached += finished.cached_tokens
            choices.append(
                CompletionChoice(
                    index=run.index,
                    text=echo + finished.text,
                    finish_reason=finished.finish_reason,  # type: ignore[arg-type]
                    logprobs=logprobs.all() if want else None,
                )
            )
        return Completion(
            id=_new_id(),
            object="text_completion",
            created=int(time.time()),
            model=runs[0].prompt.model.name,
            choices=choices,
            usage=usage(self._prompt_tokens(runs, n), completion_tokens, cached_tokens=cached),
            system_fingerprint=runs[0].prompt.fingerprint,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Completion]:
        """Validate, prepare and queue now (errors are still HTTP errors), then stream chunks."""
        runs = await self._runs(request)
        return await begun(self._chunks(request, runs))

    async def _chunks(
        self, request: CompletionRequest, runs: list[_Run]
    ) -> AsyncIterator[Completion]:
        completion_id, created = _new_id(), int(time.time())
        model = runs[0].prompt.model.name
        fingerprint = runs[0].prompt.fingerprint

        # With include_usage every chunk says `usage: null` until the last, as chat's do.
        extra = {"usage": None} if request.include_usage else {}

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

        completion_tokens = cached = 0
        n = request.n or 1
        want = request.logprobs is not None
        for run in runs:
            echo = run.prompt.text if request.echo else ""
            scoring = run.params.prompt_logprobs is not None
            logprobs = _LegacyLogprobs(0 if scoring else len(echo))
            echoed = not echo or scoring
            async for event in self.core.generate(
                run.prompt, run.params, request.stop_list, admitted=run is not runs[0]
            ):
                if not echoed:
                    # After the first event, so the generation is queued before any byte.
                    echoed = True
                    yield part(run.index, echo)
                if isinstance(event, PromptScored):  # the echo goes out with its logprobs
                    entries = logprobs.add(event.tokens)
                    logprobs.after_prompt(echo)
                    yield part(run.index, echo, entries)
                elif isinstance(event, TextDelta):
                    if want and event.tokens:
                        yield part(run.index, event.text, logprobs.add(event.tokens))
                    elif event.text:
                        yield part(run.index, event.text)
                elif isinstance(event, Finished):
                    completion_tokens += event.completion_tokens
                    if run.index % n == 0:
                        cached += event.cached_tokens
                    yield chunk(
                        CompletionChoice(
                            index=run.index,
                            text="",
                            finish_reason=event.finish_reason,  # type: ignore[arg-type]
                            logprobs=None,
                        )
                    )
        if request.include_usage:
            yield Completion(
                id=completion_id,
                object="text_completion",
                created=created,
                model=model,
                choices=[],
                usage=usage(self._prompt_tokens(runs, n), completion_tokens, cached_tokens=cached),
                system_fingerprint=fingerprint,
            )
