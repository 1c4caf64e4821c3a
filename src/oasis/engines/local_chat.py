"""The chat backend for a local token engine (llama.cpp): our templating and parsing.

The model's own chat template renders the conversation (tools natively when the template
speaks our call format, else in a generic tool prompt); tool_choice and response_format
become a grammar the engine decodes under; the sampled tokens are decoded with stop
sequences held back, split into reasoning and answer, and read for tool calls.

A harmony model (gpt-oss) opens its output with a channel header, so its grammar is the
same JSON grammar placed after a header: a forced call's header (``to=functions.NAME``, or
the built-in that stands for a hosted tool) or the ``final`` channel's is appended to the
prompt and the model writes only the body under the grammar; a response format beside
tools it may call waits for the ``final`` header the model writes itself (a lazy
constraint), so it may still think and call tools first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from oasis.core import harmony as harmony_format
from oasis.core import reasoning
from oasis.core.backend import EventStream, Prompt
from oasis.core.constraints import response_format_grammar, tool_call_grammar
from oasis.core.conversation import Conversation, FunctionTool
from oasis.core.decoding import StopDecoder
from oasis.core.events import (
    Finished,
    FinishReason,
    GenerationEvent,
    PromptScored,
    ReasoningDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallDone,
    ToolCallStarted,
)
from oasis.core.harmony import BROWSER_TOOLS, HarmonyParser, ThoughtPiece, speaks_harmony
from oasis.core.options import GenerationOptions, ResponseFormat, callable_tools, tools_in_play
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
from oasis.core.types import GeneratedToken, OutputConstraint, SamplingParams
from oasis.engines.base import MediaEngine, Queued, TextEngine
from oasis.errors import InvalidRequestError, UnsupportedError


@dataclass(frozen=True)
class LocalPrompt(Prompt):
    """A prompt rendered and tokenized for one local model."""

    tokens: list[int]
    constraint: OutputConstraint | None = None
    parses_tool_calls: bool = False  # whether the output may hold tool-call markup
    custom_tools: frozenset[str] = frozenset()  # names of the custom tools in play
    # Whether the model thinks in <think> … </think> first, and whether the prompt has
    # already opened that block.
    reasons: bool = False
    thinking_open: bool = False
    # A gpt-oss model speaking harmony, and the built-in tools it calls by other names.
    harmony: bool = False
    harmony_aliases: Mapping[str, str] = field(default_factory=dict)
    # The harmony header appended to the prompt (the model writes the body after it).
    harmony_header: str = ""


class LocalChatBackend:
    """A :class:`~oasis.core.backend.ChatBackend` over a local :class:`TextEngine`."""

    supports_prompt_logprobs = True
    supports_token_prompts = True

    def __init__(self, engine: TextEngine) -> None:
        self.engine = engine
        self.spec = engine.spec
        self.vocab_size: int | None = engine.vocab_size()
        # A llama.cpp model with a multimodal projector (``mmproj``) reads images.
        self.supports_images = isinstance(engine, MediaEngine) and engine.supports_images
        self._template = ChatTemplate(engine.chat_template, engine.bos_token, engine.eos_token)
        self._reasons = reasoning.OPEN in self._template.source
        self._harmony = speaks_harmony(self._template.source)

    @property
    def load(self) -> tuple[int, int]:
        """(requests waiting, sequences running) of the engine, if it reports them."""
        return self.engine.load if isinstance(self.engine, Queued) else (0, 0)

    async def prepare(
        self, conversation: Conversation, options: GenerationOptions, *, param: str
    ) -> LocalPrompt:
        """Render ``conversation`` with the model's template and check that it fits."""
        tools = tools_in_play(options)
        if self._harmony and any(t.custom is not None for t in tools):
            # gpt-oss calls functions with JSON bodies only (``<|constrain|>json``); a custom
            # tool's free-form input has no place in its format.
            raise UnsupportedError(
                f"Custom tools are not supported with `{self.spec.id}` (a harmony model: "
                "gpt-oss calls tools with JSON arguments only).",
                param="tools",
            )
        header = ""
        if self._harmony:
            aliases = _browser_aliases(tools)
            constraint, header = _harmony_constraint(options, aliases)
        else:
            aliases = {}
            constraint = _constraint_for(options, tools)

        shown = [image for image in conversation.images if image.data is not None]
        images = [image.data for image in shown if image.data is not None]

        def render_and_tokenize() -> tuple[str, str, list[int]]:
            text = self._render(conversation, options, tools, builtin=aliases)
            opening = _opening(text, header)
            text += opening
            if images and isinstance(self.engine, MediaEngine):
                parts = [image.param for image in shown]
                tokens = self.engine.tokenize_media(text, images, parts)
                self._check_fits(tokens, param)
                return text, opening, tokens
            return text, opening, self._fitting_tokens(text, param, add_bos=False)

        # Off the event loop: a multi-megabyte input takes seconds to render and tokenize,
        # and every other client would wait that long.
        text, header, tokens = await asyncio.to_thread(render_and_tokenize)
        return LocalPrompt(
            text,
            len(tokens),
            self.engine.context_length - len(tokens),
            tokens,
            constraint,
            parses_tool_calls=bool(tools),
            custom_tools=frozenset(t.name for t in tools if t.custom is not None),
            reasons=self._reasons,
            thinking_open=self._reasons and text.rstrip().endswith(reasoning.OPEN),
            harmony=self._harmony,
            harmony_aliases=aliases,
            harmony_header=header,
        )

    def _render(
        self,
        conversation: Conversation,
        options: GenerationOptions,
        tools: tuple[FunctionTool, ...],
        *,
        builtin: Mapping[str, str] | None = None,
    ) -> str:
        """The prompt: the model's own template, with tools natively or in a generic prompt.

        ``builtin`` maps a harmony built-in tool to the offered function it stands for;
        those functions are offered as the built-in (``browser``), as gpt-oss was trained.
        """
        extra: list[str] = []
        # A template that speaks our call format (or harmony) renders past calls and
        # results itself, whether or not tools are offered this turn.
        native = template_speaks_calls(self._template.source) or self._harmony
        stands_in = set((builtin or {}).values())
        builtin_tools = sorted({name.split(".")[0] for name in builtin or {}})
        tools = tuple(t for t in tools if t.name not in stands_in)
        if tools and not native:
            extra.append(generic_tool_prompt(tools, options.tool_choice))
        if options.response_format.type != "text":
            # The grammar keeps the output exact; a model told that JSON is expected
            # writes better JSON inside it.
            extra.append(_format_instructions(options.response_format))
        if not native and (tools or _has_tool_turns(conversation)):
            conversation = spell_out_tool_turns(conversation)
        return self._template.render(
            conversation,
            tools=tool_dicts(tools) if native and tools else None,
            extra_system="\n\n".join(extra) or None,
            builtin_tools=builtin_tools or None,
        )

    async def prepare_text(self, prompt: str | list[int], *, param: str) -> LocalPrompt:
        """A raw prompt, no chat template: text (with the model's BOS) or token ids."""
        engine = self.engine
        if isinstance(prompt, str):
            text = prompt
            tokens = await asyncio.to_thread(self._fitting_tokens, prompt, param, add_bos=True)
        else:
            self._check_fits(prompt, param)  # before scanning a list too long to use
            vocab = engine.vocab_size()
            bad = next((t for t in prompt if not 0 <= t < vocab), None)
            if bad is not None:
                raise InvalidRequestError(
                    f"'{param}' holds the token {bad}, which is not in the vocabulary of "
                    f"`{self.spec.id}` (token ids run from 0 to {vocab - 1}).",
                    param=param,
                    code="invalid_value",
                )
            text, tokens = engine.detokenize(prompt), list(prompt)
        if not tokens:
            # Nothing to continue: start a document, as OpenAI's `<|endoftext|>` default
            # does, with the model's own start (or else end-of-text) token.
            start = engine.bos_token or engine.eos_token
            tokens = engine.tokenize(start, add_bos=False)
        self._check_fits(tokens, param)
        return LocalPrompt(text, len(tokens), engine.context_length - len(tokens), tokens)

    def _fitting_tokens(self, text: str, param: str, *, add_bos: bool) -> list[int]:
        """``text``'s tokens, or a 400 when they cannot fit the context.

        A token stands for at most ``engine.max_token_bytes`` bytes of text, so a text of N
        bytes has at least N / max_token_bytes tokens. When even that many cannot fit, the
        answer is known without tokenizing (which takes seconds for megabytes of text).
        """
        engine = self.engine
        per_token = engine.max_token_bytes
        if per_token is not None and len(text) >= engine.context_length:  # chars <= bytes
            at_least = -(-len(text.encode("utf-8")) // per_token)
            if at_least >= engine.context_length:
                raise self._too_long(param, f"at least {at_least}")
        tokens = engine.tokenize(text, add_bos=add_bos)
        self._check_fits(tokens, param)
        return tokens

    def _too_long(self, param: str, count: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"This model's maximum context length is {self.engine.context_length} tokens. "
            f"However, your {param} resulted in {count} tokens. Please reduce the "
            f"length of the {param}.",
            param=param,
            code="context_length_exceeded",
        )

    def _check_fits(self, tokens: list[int], param: str) -> None:
        if len(tokens) >= self.engine.context_length:
            raise self._too_long(param, str(len(tokens)))

    def generate(
        self, runs: Sequence[tuple[Prompt, SamplingParams]], stop: Sequence[str] | None = None
    ) -> list[EventStream]:
        """Queue every run on the engine now; see :class:`~oasis.core.backend.ChatBackend`."""
        local: list[tuple[LocalPrompt, SamplingParams]] = []
        for prompt, params in runs:
            assert isinstance(prompt, LocalPrompt), "a prompt from another backend"
            budget = min(params.max_tokens, prompt.room)
            local.append((prompt, replace(params, max_tokens=budget, constraint=prompt.constraint)))
        streams = self.engine.generate_many([(p.tokens, params) for p, params in local])
        return [
            _Events(tokens, self._events(prompt, tokens, list(stop or [])))
            for (prompt, _), tokens in zip(local, streams, strict=True)
        ]

    async def _events(
        self, prompt: LocalPrompt, stream: AsyncIterator[GeneratedToken], stop: list[str]
    ) -> AsyncIterator[GenerationEvent]:
        """Text deltas as they become final, then one :class:`Finished`."""
        decoder = StopDecoder(stop)
        # A harmony model marks reasoning, answer and calls itself: one parser reads all.
        harmony = HarmonyParser(prompt.harmony_aliases) if prompt.harmony else None
        parser = (
            ToolCallParser(prompt.custom_tools)
            if prompt.parses_tool_calls and harmony is None
            else None
        )
        thinking = (
            reasoning.ReasoningSplitter(inside=prompt.thinking_open)
            if prompt.reasons and harmony is None
            else None
        )
        produced = cached = 0
        reason: FinishReason = "length"
        scored: list[GeneratedToken] = []
        header = prompt.harmony_header  # read as the output's start, once the prompt is done
        try:
            async for token in stream:
                if token.prompt_token:
                    scored.append(token)
                    continue
                if scored:  # the prompt is scored in full before the first generated token
                    yield PromptScored(scored)
                    scored = []
                if harmony is not None and header:
                    for event in _harmony_split(harmony, header, []):
                        yield event
                    header = ""
                if token.cached_prompt_tokens is not None:
                    cached = token.cached_prompt_tokens
                if token.end_of_generation:
                    reason = "stop"
                    break
                produced += 1
                chunk = decoder.feed(token)
                for event in (
                    _harmony_split(harmony, chunk.text, chunk.tokens)
                    if harmony
                    else _split(thinking, parser, chunk.text, chunk.tokens)
                ):
                    yield event
                if decoder.stopped:
                    reason = "stop"
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        if scored:  # nothing was generated (max_tokens 0)
            yield PromptScored(scored)
        if harmony is not None and header:
            for event in _harmony_split(harmony, header, []):
                yield event
        tail = decoder.flush()
        for event in (
            _harmony_split(harmony, tail.text, tail.tokens, final=True)
            if harmony
            else _split(thinking, parser, tail.text, tail.tokens, final=True)
        ):
            yield event
        if harmony is not None:
            thought = harmony.reasoning or None
        else:
            thought = (thinking.reasoning or None) if thinking else None
        # The thinking's own token count (re-tokenized: the splitter works on text).
        thought_tokens = (
            min(len(self.engine.tokenize(thought, add_bos=False)), produced) if thought else 0
        )
        if harmony is not None:
            yield Finished(
                "tool_calls" if harmony.calls and reason == "stop" else reason,
                harmony.text,
                prompt.token_count,
                produced,
                tool_calls=tuple(harmony.calls),
                reasoning=thought,
                reasoning_tokens=thought_tokens,
                cached_tokens=cached,
            )
            return
        if parser is None:
            answer = thinking.answer if thinking else decoder.text
            yield Finished(
                reason,
                answer,
                prompt.token_count,
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
            prompt.token_count,
            produced,
            tool_calls=calls,
            reasoning=thought,
            reasoning_tokens=thought_tokens,
            cached_tokens=cached,
        )

    async def close(self) -> None:
        await self.engine.close()


class _Events:
    """One run's events over its engine stream. Closing it closes the engine stream too,
    even when no event was read yet (an unstarted async generator runs no ``finally``)."""

    def __init__(
        self, tokens: AsyncIterator[GeneratedToken], events: AsyncIterator[GenerationEvent]
    ) -> None:
        self._tokens = tokens
        self._events = events

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> GenerationEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()  # type: ignore[attr-defined]
        await self._tokens.aclose()  # type: ignore[attr-defined]


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


def _harmony_split(
    harmony: HarmonyParser, text: str, tokens: list[GeneratedToken], *, final: bool = False
) -> list[GenerationEvent]:
    """A harmony stream's pieces: reasoning as ReasoningDelta, the rest as parsed events."""
    parsed = harmony.feed(text) + (harmony.finish() if final else [])
    out: list[GenerationEvent] = []
    for item in parsed:
        if isinstance(item, ThoughtPiece):
            out.append(ReasoningDelta(item.text))
        else:
            out.extend(_translate([item], tokens))
            if isinstance(item, TextPiece):
                tokens = []  # logprobs ride on the answer's first delta
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
            out.append(ToolCallStarted(item.index, item.id, item.name, item.custom))
        elif isinstance(item, CallArguments):
            out.append(ToolCallArgumentsDelta(item.index, item.delta))
        else:
            out.append(ToolCallDone(item.index, item.call))
    return out


def _constraint_for(
    options: GenerationOptions, tools: tuple[FunctionTool, ...]
) -> OutputConstraint | None:
    """The grammar for ``options`` (already checked); ``tools`` are those in play."""
    fmt = options.response_format
    schema_param = options.response_format_param
    text_schema = _text_schema(fmt)
    if not tools:
        return _format_grammar(options)
    forced = options.tool_choice != "auto"
    allowed = callable_tools(options)
    positions = {t.name: i for i, t in enumerate(options.tools)}
    params = [options.tools_param.format(index=positions[t.name]) for t in allowed]
    return tool_call_grammar(
        allowed,
        params,
        forced=forced,
        # Several calls in one turn only when asked for; a named function is called once.
        parallel=options.parallel_tool_calls and options.tool_choice in {"auto", "required"},
        text_schema=None if forced else text_schema,
        text_strict=fmt.strict or fmt.type == "json_object",
        text_param=schema_param,
    )


def _opening(text: str, header: str) -> str:
    """The harmony ``header`` to append to the rendered ``text``: after the assistant's
    ``<|start|>assistant`` the template wrote, or with it where the template did not."""
    if header and not text.endswith(harmony_format.ASSISTANT_START):
        return harmony_format.ASSISTANT_START + header
    return header


def _text_schema(fmt: ResponseFormat) -> dict[str, Any] | None:
    """The schema the answer's text must match (None: free text)."""
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.type == "json_schema":
        return fmt.schema
    return None


def _format_grammar(options: GenerationOptions) -> OutputConstraint | None:
    """The grammar of ``response_format`` alone (None for text)."""
    fmt = options.response_format
    if _text_schema(fmt) is None:
        return None
    return response_format_grammar(
        None if fmt.type == "json_object" else fmt.schema,
        strict=fmt.strict or fmt.type == "json_object",
        param=options.response_format_param,
    )


def _harmony_constraint(
    options: GenerationOptions, aliases: Mapping[str, str]
) -> tuple[OutputConstraint | None, str]:
    """A harmony model's (grammar, header to append to the prompt); see the module
    docstring. ``required`` with several tools to choose from is asked for in the prompt
    only: the choice is in the header, which a prefix cannot leave open."""
    allowed = callable_tools(options)
    if options.tool_choice != "auto" and allowed:
        if len(allowed) > 1:
            return None, ""
        (tool,) = allowed
        position = next(i for i, t in enumerate(options.tools) if t.name == tool.name)
        arguments = response_format_grammar(
            tool.parameters or {"type": "object", "properties": {}},
            strict=tool.strict,
            param=options.tools_param.format(index=position),
        )
        builtin = next((b for b, name in aliases.items() if name == tool.name), None)
        return arguments, harmony_format.call_header(tool.name, builtin)
    text = _format_grammar(options)
    if text is None:
        return None, ""
    if not allowed:
        return text, harmony_format.FINAL_HEADER
    return replace(text, trigger=harmony_format.FINAL_HEADER, end_after_match=True), ""


def _browser_aliases(tools: tuple[FunctionTool, ...]) -> dict[str, str]:
    """The harmony built-ins that stand for offered functions (web search → browser)."""
    offered = {t.name for t in tools}
    return {builtin: name for builtin, name in BROWSER_TOOLS.items() if name in offered}


def _has_tool_turns(conversation: Conversation) -> bool:
    return any(m.role == "tool" or m.tool_calls for m in conversation.messages)


def _format_instructions(fmt: ResponseFormat) -> str:
    if fmt.type == "json_schema" and fmt.schema is not None:
        schema = json.dumps(fmt.schema, ensure_ascii=False)
        return f"Reply with a JSON object that matches this JSON schema:\n{schema}"
    return "Reply with a JSON object."
