"""The generation core: conversation in, rendered prompt, tokens out, parsed output back.

Chat Completions and Responses both call :class:`GenerationCore`; neither renders
prompts or decodes tokens itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from oasis import __version__
from oasis.core import reasoning
from oasis.core.constraints import response_format_grammar, tool_call_grammar
from oasis.core.conversation import Conversation, FunctionTool, ToolCall
from oasis.core.decoding import StopDecoder
from oasis.core.templates import ChatTemplate
from oasis.core.tool_calls import (
    CallArguments,
    CallStarted,
    ParsedEvent,
    TextPiece,
    ToolCallParser,
    generic_tool_prompt,
    spell_out_tool_turns,
    template_speaks_calls,
    tool_dicts,
)
from oasis.engines.base import GeneratedToken, OutputConstraint, SamplingParams, TextEngine
from oasis.errors import InvalidRequestError
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
    must be called. With "required" or a name, decoding is constrained so the output is
    always well-formed calls whose arguments validate against the tools' schemas; with
    "auto" the model may answer in text, and any call it starts is constrained the same
    way. ``response_format`` json_object / json_schema constrains the text likewise.
    ``allowed_tools`` (tool_choice ``allowed_tools``) narrows which tools may be called
    without changing the tools the prompt shows, so the prompt prefix stays cacheable.
    """

    tools: tuple[FunctionTool, ...] = ()
    tool_choice: str = "auto"
    allowed_tools: frozenset[str] | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    # Where these live in the request body, for 400s (`{index}` is the tool's position).
    tools_param: str = "tools[{index}].function.parameters"
    tool_choice_param: str = "tool_choice"
    response_format_param: str = "response_format.json_schema.schema"


@dataclass(frozen=True)
class PreparedPrompt:
    """A conversation rendered and tokenized for one model."""

    model: ResolvedModel
    engine: TextEngine
    text: str
    tokens: list[int]
    options: GenerationOptions = field(default_factory=GenerationOptions)
    constraint: OutputConstraint | None = None
    parses_tool_calls: bool = False  # whether the output may hold tool-call markup
    # Whether the model thinks in <think> … </think> first, and whether the prompt has
    # already opened that block.
    reasons: bool = False
    thinking_open: bool = False

    @property
    def fingerprint(self) -> str:
        """``system_fingerprint``: changes when what decides the output may have changed.

        That is the oasis version and the model as configured (weights, engine, options,
        context); with the same fingerprint and ``seed``, sampling repeats.
        """
        spec = self.model.spec
        identity = json.dumps(
            [
                __version__,
                spec.id,
                spec.engine,
                repr(spec.source),
                spec.options,
                self.engine.context_length,
            ],
            sort_keys=True,
            default=str,
        )
        return "fp_" + hashlib.sha256(identity.encode()).hexdigest()[:10]


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
    reasoning_tokens: int = 0  # of completion_tokens, those spent thinking
    cached_tokens: int = 0  # of prompt_tokens, those the engine reused from its cache


@dataclass(frozen=True)
class PromptScored:
    """The prompt's own tokens with their logprobs (asked for by ``prompt_logprobs``)."""

    tokens: list[GeneratedToken]


GenerationEvent = (
    TextDelta
    | ReasoningDelta
    | PromptScored
    | ToolCallStarted
    | ToolCallArgumentsDelta
    | ToolCallDone
    | Finished
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
        _check_allowed(options)
        tools = _tools_in_play(options)
        constraint = _constraint_for(options, tools)
        # A protocol is a fine runtime check here; mypy wants a concrete class.
        resolved, engine = await self.models.get(model, "chat", TextEngine)  # type: ignore[type-abstract]
        template = self._template_for(resolved, engine)

        def render_and_tokenize() -> tuple[str, list[int]]:
            text = self._render(template, conversation, options, tools)
            return text, _fitting_tokens(engine, text, param, add_bos=False)

        # Off the event loop: a multi-megabyte input takes seconds to render and tokenize,
        # and every other client would wait that long.
        text, tokens = await asyncio.to_thread(render_and_tokenize)
        reasons = reasoning.OPEN in template.source
        return PreparedPrompt(
            resolved,
            engine,
            text,
            tokens,
            options,
            constraint,
            parses_tool_calls=bool(tools),
            reasons=reasons,
            thinking_open=reasons and text.rstrip().endswith(reasoning.OPEN),
        )

    @staticmethod
    def _render(
        template: ChatTemplate,
        conversation: Conversation,
        options: GenerationOptions,
        tools: tuple[FunctionTool, ...],
    ) -> str:
        """The prompt: the model's own template, with tools natively or in a generic prompt."""
        extra: list[str] = []
        # A template that speaks our call format renders past calls and results itself,
        # whether or not tools are offered this turn.
        native = template_speaks_calls(template.source)
        if tools and not native:
            extra.append(generic_tool_prompt(tools, options.tool_choice))
        if options.response_format.type != "text":
            # The grammar keeps the output exact; a model told that JSON is expected
            # writes better JSON inside it.
            extra.append(_format_instructions(options.response_format))
        if not native and (tools or _has_tool_turns(conversation)):
            conversation = spell_out_tool_turns(conversation)
        return template.render(
            conversation,
            tools=tool_dicts(tools) if native and tools else None,
            extra_system="\n\n".join(extra) or None,
        )

    def _template_for(self, resolved: ResolvedModel, engine: TextEngine) -> ChatTemplate:
        template = self._templates.get(resolved.spec.id)
        if template is None:
            template = ChatTemplate(engine.chat_template, engine.bos_token, engine.eos_token)
            self._templates[resolved.spec.id] = template
        return template

    async def prepare_text(
        self, model: str, prompt: str | list[int], *, param: str = "prompt"
    ) -> PreparedPrompt:
        """A raw prompt, no chat template: text (with the model's BOS) or token ids."""
        resolved, engine = await self.models.get(model, "chat", TextEngine)  # type: ignore[type-abstract]
        if isinstance(prompt, str):
            text = prompt
            tokens = await asyncio.to_thread(_fitting_tokens, engine, prompt, param, add_bos=True)
        else:
            _check_fits(engine, prompt, param)  # before scanning a list too long to use
            vocab = engine.vocab_size()
            bad = next((t for t in prompt if not 0 <= t < vocab), None)
            if bad is not None:
                raise InvalidRequestError(
                    f"'{param}' holds the token {bad}, which is not in the vocabulary of "
                    f"`{resolved.spec.id}` (token ids run from 0 to {vocab - 1}).",
                    param=param,
                    code="invalid_value",
                )
            text, tokens = engine.detokenize(prompt), list(prompt)
        if not tokens:
            # Nothing to continue: start a document, as OpenAI's `<|endoftext|>` default
            # does, with the model's own start (or else end-of-text) token.
            start = engine.bos_token or engine.eos_token
            tokens = engine.tokenize(start, add_bos=False)
        _check_fits(engine, tokens, param)
        return PreparedPrompt(resolved, engine, text, tokens)

    def max_new_tokens(self, prepared: PreparedPrompt, requested: int | None) -> int:
        """The token budget: what was asked for, never past the end of the context."""
        room = prepared.engine.context_length - len(prepared.tokens)
        return room if requested is None else min(requested, room)

    async def generate(
        self,
        prepared: PreparedPrompt,
        params: SamplingParams,
        stop: list[str] | None = None,
        *,
        admitted: bool = False,
    ) -> AsyncIterator[GenerationEvent]:
        """Text deltas as they become final, then one :class:`Finished`.

        ``admitted``: the request already had a generation start (this is a later choice),
        so the engine's queue neither refuses nor times it out.
        """
        budget = self.max_new_tokens(prepared, params.max_tokens)
        params = replace(params, max_tokens=budget, constraint=prepared.constraint)
        decoder = StopDecoder(stop)
        parser = ToolCallParser() if prepared.parses_tool_calls else None
        thinking = (
            reasoning.ReasoningSplitter(inside=prepared.thinking_open) if prepared.reasons else None
        )
        produced = cached = 0
        reason: FinishReason = "length"
        stream = prepared.engine.generate(prepared.tokens, params, admitted=admitted)
        scored: list[GeneratedToken] = []
        try:
            async for token in stream:
                if token.prompt_token:
                    scored.append(token)
                    continue
                if scored:  # the prompt is scored in full before the first generated token
                    yield PromptScored(scored)
                    scored = []
                if token.cached_prompt_tokens is not None:
                    cached = token.cached_prompt_tokens
                if token.end_of_generation:
                    reason = "stop"
                    break
                produced += 1
                chunk = decoder.feed(token)
                for event in _split(thinking, parser, chunk.text, chunk.tokens):
                    yield event
                if decoder.stopped:
                    reason = "stop"
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        if scored:  # nothing was generated (max_tokens 0)
            yield PromptScored(scored)
        tail = decoder.flush()
        for event in _split(thinking, parser, tail.text, tail.tokens, final=True):
            yield event
        thought = (thinking.reasoning or None) if thinking else None
        # The thinking's own token count (re-tokenized: the splitter works on text).
        thought_tokens = (
            min(len(prepared.engine.tokenize(thought, add_bos=False)), produced) if thought else 0
        )
        if parser is None:
            answer = thinking.answer if thinking else decoder.text
            yield Finished(
                reason,
                answer,
                len(prepared.tokens),
                produced,
                reasoning=thought,
                reasoning_tokens=thought_tokens,
                cached_tokens=cached,
            )
            return
        for event in _translate(parser.finish(), []):
            yield event
        calls = tuple(parser.calls)
        if calls and reason == "stop":
            reason = "tool_calls"
        yield Finished(
            reason,
            parser.text,
            len(prepared.tokens),
            produced,
            tool_calls=calls,
            reasoning=thought,
            reasoning_tokens=thought_tokens,
            cached_tokens=cached,
        )


def _split(
    thinking: reasoning.ReasoningSplitter | None,
    parser: ToolCallParser | None,
    text: str,
    tokens: list[GeneratedToken],
    *,
    final: bool = False,
) -> list[GenerationEvent]:
    """Reasoning pieces as ReasoningDelta; the answer goes on to the tool-call parser."""
    if thinking is None:
        return _parsed(parser, text, tokens)
    pieces = thinking.feed(text)
    if final:
        pieces += thinking.flush()
    out: list[GenerationEvent] = []
    for is_reasoning, piece in pieces:
        if is_reasoning:
            out.append(ReasoningDelta(piece))
        else:
            out.extend(_parsed(parser, piece, tokens))
            tokens = []  # logprobs belong to the answer; thinking tokens have none
    return out


def _parsed(
    parser: ToolCallParser | None, text: str, tokens: list[GeneratedToken]
) -> list[GenerationEvent]:
    if parser is None:
        return [TextDelta(text, tokens)] if text or tokens else []
    return _translate(parser.feed(text), tokens)


def _translate(parsed: list[ParsedEvent], tokens: list[GeneratedToken]) -> list[GenerationEvent]:
    """Parser events as generation events; the tokens ride on the first text delta."""
    out: list[GenerationEvent] = []
    for item in parsed:
        if isinstance(item, TextPiece):
            out.append(TextDelta(item.text, tokens))
            tokens = []
        elif isinstance(item, CallStarted):
            out.append(ToolCallStarted(item.index, item.id, item.name))
        elif isinstance(item, CallArguments):
            out.append(ToolCallArgumentsDelta(item.index, item.delta))
        else:
            out.append(ToolCallDone(item.index, item.call))
    return out


def _fitting_tokens(engine: TextEngine, text: str, param: str, *, add_bos: bool) -> list[int]:
    """``text``'s tokens, or a 400 when they cannot fit the context.

    A token stands for at most ``engine.max_token_bytes`` bytes of text, so a text of N
    bytes has at least N / max_token_bytes tokens. When even that many cannot fit, the
    answer is known without tokenizing (which takes seconds for megabytes of text).
    """
    per_token = engine.max_token_bytes
    if per_token is not None and len(text) >= engine.context_length:  # chars <= bytes
        at_least = -(-len(text.encode("utf-8")) // per_token)
        if at_least >= engine.context_length:
            raise _too_long(engine, param, f"at least {at_least}")
    tokens = engine.tokenize(text, add_bos=add_bos)
    _check_fits(engine, tokens, param)
    return tokens


def _too_long(engine: TextEngine, param: str, count: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"This model's maximum context length is {engine.context_length} tokens. "
        f"However, your {param} resulted in {count} tokens. Please reduce the "
        f"length of the {param}.",
        param=param,
        code="context_length_exceeded",
    )


def _check_fits(engine: TextEngine, tokens: list[int], param: str) -> None:
    if len(tokens) >= engine.context_length:
        raise _too_long(engine, param, str(len(tokens)))


def _tools_in_play(options: GenerationOptions) -> tuple[FunctionTool, ...]:
    """The tools the model may call this turn (none with tool_choice "none")."""
    choice = options.tool_choice
    if choice == "none" or not options.tools:
        if choice not in {"none", "auto"} and not options.tools:
            raise InvalidRequestError(
                f"tool_choice '{choice}' needs at least one tool in `tools`.",
                param=options.tool_choice_param,
            )
        return ()
    if choice in {"auto", "required"}:
        return options.tools
    named = tuple(t for t in options.tools if t.name == choice)
    if not named:
        raise InvalidRequestError(
            f"tool_choice names the function '{choice}', which is not in `tools`.",
            param=options.tool_choice_param,
        )
    return options.tools


def _check_allowed(options: GenerationOptions) -> None:
    if options.allowed_tools is None:
        return
    unknown = sorted(options.allowed_tools - {t.name for t in options.tools})
    if unknown or not options.allowed_tools:
        raise InvalidRequestError(
            f"`allowed_tools` names the function '{unknown[0]}', which is not in `tools`."
            if unknown
            else "`allowed_tools` needs at least one tool.",
            param=options.tool_choice_param,
            code="invalid_value",
        )
    if options.tool_choice not in {"auto", "required"}:
        raise InvalidRequestError(
            "`allowed_tools` takes mode 'auto' or 'required'.",
            param=options.tool_choice_param,
            code="invalid_value",
        )


def _constraint_for(
    options: GenerationOptions, tools: tuple[FunctionTool, ...]
) -> OutputConstraint | None:
    fmt = options.response_format
    schema_param = options.response_format_param
    text_schema: dict[str, Any] | None = None
    if fmt.type == "json_object":
        text_schema = {"type": "object"}
    elif fmt.type == "json_schema":
        if fmt.schema is None:
            raise InvalidRequestError("json_schema needs a `schema`.", param=schema_param)
        text_schema = fmt.schema
    if not tools:
        if text_schema is None:
            return None
        return response_format_grammar(
            None if fmt.type == "json_object" else text_schema,
            strict=fmt.strict or fmt.type == "json_object",
            param=schema_param,
        )
    choice = options.tool_choice
    forced = choice != "auto"
    if options.allowed_tools is not None:
        tools = tuple(t for t in tools if t.name in options.allowed_tools)
    allowed = (
        tools if choice in {"auto", "required"} else tuple(t for t in tools if t.name == choice)
    )
    positions = {t.name: i for i, t in enumerate(options.tools)}
    params = [options.tools_param.format(index=positions[t.name]) for t in allowed]
    return tool_call_grammar(
        allowed,
        params,
        forced=forced,
        # Several calls in one turn only when asked for; a named function is called once.
        parallel=options.parallel_tool_calls and choice in {"auto", "required"},
        text_schema=None if forced else text_schema,
        text_strict=fmt.strict or fmt.type == "json_object",
        text_param=schema_param,
    )


def _has_tool_turns(conversation: Conversation) -> bool:
    return any(m.role == "tool" or m.tool_calls for m in conversation.messages)


def _format_instructions(fmt: ResponseFormat) -> str:
    if fmt.type == "json_schema" and fmt.schema is not None:
        schema = json.dumps(fmt.schema, ensure_ascii=False)
        return f"Reply with a JSON object that matches this JSON schema:\n{schema}"
    return "Reply with a JSON object."
