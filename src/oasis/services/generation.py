"""The generation core: conversation in, rendered prompt, tokens out, parsed output back.

Chat Completions and Responses both call :class:`GenerationCore`; neither renders
prompts or decodes tokens itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from oasis.core.conversation import Conversation, FunctionTool, ToolCall
from oasis.core.decoding import StopDecoder
from oasis.core.templates import ChatTemplate
from oasis.engines.base import GeneratedToken, SamplingParams, TextEngine
from oasis.errors import InvalidRequestError, UnsupportedError
from oasis.models.registry import ResolvedModel
from oasis.services.models import ModelManager

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True)
class ResponseFormat:
    """What shape the text output must take. ``schema`` is set for ``json_schema``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    strict: bool = False
    name: str | None = None


@dataclass(frozen=True)
class GenerationOptions:
    """Tools and output constraints, in the terms both chat and Responses share.

    ``tool_choice`` is "none", "auto", "required", or the name of the one function that
    must be called.
    """

    tools: tuple[FunctionTool, ...] = ()
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    response_format: ResponseFormat = field(default_factory=ResponseFormat)


@dataclass(frozen=True)
class PreparedPrompt:
    """A conversation rendered and tokenized for one model."""

    model: ResolvedModel
    engine: TextEngine
    text: str
    tokens: list[int]
    options: GenerationOptions = field(default_factory=GenerationOptions)


@dataclass(frozen=True)
class TextDelta:
    text: str
    tokens: list[GeneratedToken] = field(default_factory=list)


@dataclass(frozen=True)
class ReasoningDelta:
    """Reasoning text, for models that think before answering."""

    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    """A tool call begins: ``index`` counts calls within this generation from 0."""

    index: int
    id: str
    name: str


@dataclass(frozen=True)
class ToolCallArgumentsDelta:
    index: int
    delta: str


@dataclass(frozen=True)
class ToolCallDone:
    index: int
    call: ToolCall


@dataclass(frozen=True)
class Finished:
    """The end of one generation. ``text`` excludes tool-call markup and reasoning."""

    finish_reason: FinishReason
    text: str
    prompt_tokens: int
    completion_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None


GenerationEvent = (
    TextDelta | ReasoningDelta | ToolCallStarted | ToolCallArgumentsDelta | ToolCallDone | Finished
)


class GenerationCore:
    """Renders conversations with each model's chat template and runs its engine."""

    def __init__(self, models: ModelManager) -> None:
        self.models = models
        self._templates: dict[str, ChatTemplate] = {}

    async def prepare(
        self,
        model: str,
        conversation: Conversation,
        options: GenerationOptions | None = None,
        *,
        param: str = "messages",
    ) -> PreparedPrompt:
        """Resolve ``model``, render ``conversation`` and check it fits the context."""
        options = options or GenerationOptions()
        if options.tools or options.response_format.type != "text":
            # Tool calling and constrained decoding land with the tools issue.
            raise UnsupportedError(
                "Tools and structured outputs are not available yet.",
                param="tools" if options.tools else "response_format",
            )
        resolved, engine = await self.models.get(model, "chat", TextEngine)
        template = self._template_for(resolved, engine)
        text = template.render(conversation)
        tokens = engine.tokenize(text, add_bos=False)
        if len(tokens) >= engine.context_length:
            raise InvalidRequestError(
                f"This model's maximum context length is {engine.context_length} tokens. "
                f"However, your {param} resulted in {len(tokens)} tokens. Please reduce the "
                f"length of the {param}.",
                param=param,
                code="context_length_exceeded",
            )
        return PreparedPrompt(resolved, engine, text, tokens, options)

    def _template_for(self, resolved: ResolvedModel, engine: TextEngine) -> ChatTemplate:
        template = self._templates.get(resolved.spec.id)
        if template is None:
            template = ChatTemplate(engine.chat_template, engine.bos_token, engine.eos_token)
            self._templates[resolved.spec.id] = template
        return template

    def max_new_tokens(self, prepared: PreparedPrompt, requested: int | None) -> int:
        """The token budget: what was asked for, never past the end of the context."""
        room = prepared.engine.context_length - len(prepared.tokens)
        return room if requested is None else min(requested, room)

    async def generate(
        self,
        prepared: PreparedPrompt,
        params: SamplingParams,
        stop: list[str] | None = None,
    ) -> AsyncIterator[GenerationEvent]:
        """Text deltas as they become final, then one :class:`Finished`."""
        budget = self.max_new_tokens(prepared, params.max_tokens)
        params = replace(params, max_tokens=budget)
        decoder = StopDecoder(stop)
        produced = 0
        reason: FinishReason = "length"
        stream = prepared.engine.generate(prepared.tokens, params)
        try:
            async for token in stream:
                if token.end_of_generation:
                    reason = "stop"
                    break
                produced += 1
                chunk = decoder.feed(token)
                if chunk.text or chunk.tokens:
                    yield TextDelta(chunk.text, chunk.tokens)
                if decoder.stopped:
                    reason = "stop"
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        tail = decoder.flush()
        if tail.text or tail.tokens:
            yield TextDelta(tail.text, tail.tokens)
        yield Finished(reason, decoder.text, len(prepared.tokens), produced)
