"""Chat Completions on top of the generation core: wire request in, OpenAI types out."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaFunctionCall,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_chunk import ChoiceLogprobs as ChunkLogprobs

from oasis.caller import UsageEntry, record_usage
from oasis.core.conversation import (
    Conversation,
    FunctionTool,
    Image,
    Message,
    ToolCall,
    joined_parts,
)
from oasis.core.events import (
    Finished,
    ReasoningDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
)
from oasis.core.options import GenerationOptions, ResponseFormat
from oasis.core.types import SamplingParams
from oasis.errors import InvalidRequestError, UnsupportedError
from oasis.ids import new_id
from oasis.services.chat_fold import ChatCompletionFold, ServiceTier, with_reasoning
from oasis.services.chat_search import ChatSearch
from oasis.services.chat_store import StoredChatCompletions
from oasis.services.generation import GenerationCore, PreparedPrompt
from oasis.services.outputs import token_logprob, usage
from oasis.services.sampling import choice_params
from oasis.services.streams import Interleaved, begun
from oasis.tools.citations import CitationScanner, Sources
from oasis.tools.custom import input_format
from oasis.tools.function import function_tools
from oasis.wire.chat import (
    AllowedToolsChoice,
    ChatCompletionRequest,
    ChatFunctionTool,
    ChatMessage,
    NamedToolChoice,
    ToolCallParam,
)


def new_completion_id() -> str:
    return new_id("chatcmpl", nbytes=12, sep="-")


def _message_content(message: ChatMessage, index: int) -> tuple[str, tuple[Image, ...]]:
    """A message's text, with a marker where each of its images sits, and the images."""
    content = message.content
    if content is None:
        return "", ()
    if isinstance(content, str):
        return content, ()
    parts: list[str | Image] = []
    for j, part in enumerate(content):
        where = f"messages[{index}].content[{j}]"
        if part.type in {"text", "refusal"} and part.text is not None:
            parts.append(part.text)
        elif part.type == "text":
            raise InvalidRequestError("A text part needs `text`.", param=f"{where}.text")
        elif part.type == "image_url" and message.role == "user":
            if part.image_url is None:
                raise InvalidRequestError(
                    "An image_url part needs `image_url`.",
                    param=f"{where}.image_url",
                    code="missing_required_parameter",
                )
            parts.append(
                Image(where, url=part.image_url.url, detail=part.image_url.detail or "auto")
            )
        else:
            raise UnsupportedError(
                f"Content parts of type '{part.type}' are not supported in {message.role} "
                "messages here; 'text' parts are (and 'image_url' parts in user messages, "
                "for a model with vision).",
                param=f"{where}.type",
            )
    return joined_parts(parts)


def to_conversation(request: ChatCompletionRequest) -> Conversation:
    """The chat ``messages`` as the core's conversation form.

    The deprecated ``function_call`` / ``function`` messages carry no call ids: each legacy
    call gets one from its position, and a function result answers the latest call.
    """
    messages: list[Message] = []
    legacy_call: str | None = None
    for i, raw in enumerate(request.messages):
        calls = tuple(_past_call(c) for c in raw.tool_calls or [])
        if raw.function_call is not None and raw.role == "assistant":
            legacy_call = f"call_legacy_{i}"
            function = raw.function_call
            calls += (ToolCall(id=legacy_call, name=function.name, arguments=function.arguments),)
        content, images = _message_content(raw, i)
        messages.append(
            Message(
                role="tool" if raw.role == "function" else raw.role,
                content=content,
                tool_calls=calls,
                tool_call_id=legacy_call if raw.role == "function" else raw.tool_call_id,
                name=raw.name,
                images=images,
            )
        )
    return Conversation(tuple(messages))


def _past_call(call: ToolCallParam) -> ToolCall:
    if call.custom is not None and call.type == "custom":
        return ToolCall(call.id, call.custom.name, call.custom.input, custom=True)
    assert call.function is not None  # the wire model checks the type's body is there
    return ToolCall(call.id, call.function.name, call.function.arguments)


def _tools(request: ChatCompletionRequest) -> tuple[FunctionTool, ...]:
    """``tools``, checked: function definitions as both endpoints check them, custom
    tools' formats (Chat spells a grammar under ``format.grammar``); names are unique."""
    entries = list(enumerate(request.tools or []))
    functions = [(i, tool.function) for i, tool in entries if isinstance(tool, ChatFunctionTool)]
    checked = function_tools(
        [f for _, f in functions], lambda j: f"tools[{functions[j][0]}].function"
    )
    by_index = dict(zip((i for i, _ in functions), checked, strict=True))
    names = {tool.name for tool in checked}
    out: list[FunctionTool] = []
    for i, tool in entries:
        if isinstance(tool, ChatFunctionTool):
            out.append(by_index[i])
            continue
        custom = tool.custom
        if custom.name in names:
            raise InvalidRequestError(
                f"Duplicate tool name '{custom.name}'.", param=f"tools[{i}].custom.name"
            )
        names.add(custom.name)
        fmt = input_format(custom.format, f"tools[{i}].custom.format", nested=True)
        out.append(FunctionTool(custom.name, custom.description, custom=fmt))
    return tuple(out)


def _response_format(request: ChatCompletionRequest) -> ResponseFormat:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return ResponseFormat()
    if fmt.type == "json_object" or fmt.json_schema is None or fmt.json_schema.schema_ is None:
        return ResponseFormat("json_object")
    spec = fmt.json_schema
    return ResponseFormat("json_schema", spec.schema_, bool(spec.strict), spec.name)


def _legacy_function_options(request: ChatCompletionRequest) -> GenerationOptions:
    """``functions`` / ``function_call``: tools and tool_choice under their old names."""
    if request.tools is not None:
        raise InvalidRequestError(
            "Give either `tools` or the deprecated `functions`, not both.", param="functions"
        )
    if request.tool_choice is not None:
        raise InvalidRequestError(
            "With `functions`, choose with `function_call`, not `tool_choice`.",
            param="tool_choice",
        )
    tools = function_tools(request.functions or [], lambda i: f"functions[{i}]")
    choice = request.function_call
    tool_choice: str
    if choice is None or isinstance(choice, str):
        tool_choice = choice or "auto"
    else:
        if choice.name not in {tool.name for tool in tools}:
            raise InvalidRequestError(
                f"function_call names the function '{choice.name}', which is not in `functions`.",
                param="function_call",
                code="invalid_value",
            )
        tool_choice = choice.name
    return GenerationOptions(
        tools=tuple(tools),
        tool_choice=tool_choice,
        parallel_tool_calls=False,  # the old form has room for one call only
        response_format=_response_format(request),
        tools_param="functions[{index}].parameters",
        tool_choice_param="function_call",
    )


def generation_options(request: ChatCompletionRequest) -> GenerationOptions:
    """Tools, tool_choice and response_format in the generation core's terms."""
    if request.functions is not None:
        return _legacy_function_options(request)
    if request.function_call is not None:
        raise InvalidRequestError(
            "`function_call` chooses among `functions`, and none were given.",
            param="function_call",
        )
    tools = _tools(request)
    allowed: frozenset[str] | None = None
    choice = request.tool_choice
    if choice is None:
        tool_choice = "auto" if tools else "none"
    elif isinstance(choice, str):
        tool_choice = choice
    elif isinstance(choice, AllowedToolsChoice):
        allowed = frozenset(ref.name for ref in choice.allowed_tools.tools)
        tool_choice = choice.allowed_tools.mode
    else:
        tool_choice = choice.name
    return GenerationOptions(
        tools=tools,
        tool_choice=tool_choice,
        allowed_tools=allowed,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        response_format=_response_format(request),
    )


@dataclass(frozen=True)
class _Plan:
    """A validated request, ready to run: the prompt and one parameter set per choice."""

    request: ChatCompletionRequest
    prompt: PreparedPrompt
    choices: list[SamplingParams]
    want_logprobs: bool
    owner: str  # whose completion it is, if it is kept
    sources: Sources | None = None  # web_search_options: what the answer may cite

    @property
    def keep(self) -> bool:
        """``store: true``: the whole completion is kept once it is done."""
        return bool(self.request.store)

    @property
    def model_name(self) -> str:
        return self.prompt.model.name

    @property
    def legacy_functions(self) -> bool:
        """The request used ``functions``: calls are answered in the old shape."""
        return self.request.functions is not None

    def finish_reason(self, finished: Finished) -> FinishReasonOut:
        if finished.finish_reason == "tool_calls":
            if self.legacy_functions:
                return "function_call"
            if isinstance(self.request.tool_choice, NamedToolChoice):
                # OpenAI ends a call it was told to make with "stop": the client chose it,
                # the model did not (clients branch on this to tell the two apart).
                return "stop"
        return finished.finish_reason


class ChatService:
    """Runs chat completions, plain or streamed: one chunk stream, folded when not streamed."""

    def __init__(
        self,
        core: GenerationCore,
        search: ChatSearch | None = None,
        stored: StoredChatCompletions | None = None,
    ) -> None:
        self.core = core
        self.search = search  # for web_search_options
        self.stored = stored  # where ``store: true`` keeps completions

    async def _plan(self, request: ChatCompletionRequest, owner: str) -> _Plan:
        if request.top_logprobs is not None and not request.logprobs:
            raise InvalidRequestError(
                "`top_logprobs` requires `logprobs` to be true.", param="top_logprobs"
            )
        if request.store and self.stored is None:
            raise UnsupportedError("This server does not store chat completions.", param="store")
        conversation = to_conversation(request)
        sources: Sources | None = None
        if request.web_search_options is not None:
            if self.search is None:
                raise UnsupportedError(
                    "web_search_options is not available here.", param="web_search_options"
                )
            conversation, sources = await self.search.ground(
                request.web_search_options, conversation, owner="chat"
            )
        prompt = await self.core.prepare(
            request.model, conversation, generation_options(request), owner=owner
        )
        choices = choice_params(
            request,
            prompt.backend.vocab_size,
            self.core.max_new_tokens(prompt, request.token_limit),
            (request.top_logprobs or 0) if request.logprobs else None,
            request.n or 1,
        )
        return _Plan(request, prompt, choices, bool(request.logprobs), owner, sources)

    def _start(self, plan: _Plan) -> Interleaved:
        """Every choice queued now, together (a full queue answers 503 here)."""
        runs = [(plan.prompt, params) for params in plan.choices]
        return Interleaved(self.core.generate_all(runs, plan.request.stop_list))

    async def create(self, request: ChatCompletionRequest, owner: str) -> ChatCompletion:
        """A whole completion: the stream's chunks, folded (and kept, with ``store``)."""
        plan = await self._plan(request, owner)
        fold = ChatCompletionFold(logprobs=plan.want_logprobs)
        chunks = self._chunks(plan, self._start(plan), include_usage=False, fold=fold)
        try:
            async for _ in chunks:
                pass
        finally:
            await chunks.aclose()
        return fold.result(_service_tier(request))

    async def stream(
        self, request: ChatCompletionRequest, owner: str
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Validate, prepare and queue now (errors are still HTTP errors), then stream."""
        plan = await self._plan(request, owner)
        fold = ChatCompletionFold(logprobs=plan.want_logprobs) if plan.keep else None
        return await begun(
            self._chunks(plan, self._start(plan), include_usage=request.include_usage, fold=fold)
        )

    async def _chunks(
        self,
        plan: _Plan,
        events: Interleaved,
        *,
        include_usage: bool,
        fold: ChatCompletionFold | None = None,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The completion's chunks; each goes into ``fold`` too, and with ``store`` the
        folded whole is kept before the stream ends (a client that reads it back as soon
        as its stream ends finds it)."""
        completion_id = new_completion_id()
        created = int(time.time())
        extra = {"usage": None} if include_usage else {}
        fingerprint = plan.prompt.fingerprint

        def chunk(index: int, delta: ChoiceDelta, **fields: Any) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=completion_id,
                object="chat.completion.chunk",
                created=created,
                model=plan.model_name,
                choices=[
                    ChunkChoice(
                        index=index,
                        delta=delta,
                        logprobs=fields.get("logprobs"),
                        finish_reason=fields.get("finish_reason"),
                    )
                ],
                system_fingerprint=fingerprint,
                **extra,
            )

        tally = _Tally()
        choices = self._choice_chunks(plan, events, chunk, tally)
        try:
            async for piece in choices:
                if fold is not None:
                    fold.add(piece)
                yield piece
        finally:
            await choices.aclose()  # which closes the events: every choice stops
        # As the backend counted it when it finished (a remote engine counts only then).
        prompt_tokens = tally.prompt if tally.prompt is not None else plan.prompt.prompt_tokens
        final = usage(prompt_tokens, tally.completion, tally.reasoning, tally.cached or 0)
        if fold is not None:
            fold.usage = final
            # ``_plan`` refused ``store`` where there is nowhere to keep it.
            if plan.keep and self.stored is not None:
                completion = fold.result(_service_tier(plan.request))
                await self.stored.keep(plan.owner, plan.request, completion)
        if include_usage:
            yield ChatCompletionChunk(
                id=completion_id,
                object="chat.completion.chunk",
                created=created,
                model=plan.model_name,
                choices=[],
                system_fingerprint=fingerprint,
                usage=final,
            )
        # After the last chunk, so the client does not wait for the write.
        await record_usage(
            UsageEntry(
                "completions",
                plan.prompt.model.spec.id,
                input_tokens=prompt_tokens,
                cached_tokens=tally.cached or 0,
                output_tokens=tally.completion,
            )
        )
        if plan.sources is not None:  # web_search_options ran one search
            await record_usage(
                UsageEntry("web_search_calls", plan.prompt.model.spec.id, tool_calls=1)
            )

    async def _choice_chunks(
        self,
        plan: _Plan,
        events: Interleaved,
        chunk: Callable[..., ChatCompletionChunk],
        tally: _Tally,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Every choice's chunks, in the order its events come; ``tally`` sums the usage."""
        started: set[int] = set()  # the role goes out once per choice
        texts: dict[int, list[str]] = {}  # with sources: each choice's text, to cite
        # (choice, call index) of custom tools' calls. Their deltas carry ``custom``
        # ({name, input}) and no ``type``: the SDK's chunk type knows function calls only.
        custom_calls: set[tuple[int, int]] = set()
        try:
            async for index, event in events:
                first = index not in started
                started.add(index)
                if first and not isinstance(event, ToolCallStarted):
                    yield chunk(index, ChoiceDelta(role="assistant", content="", refusal=None))
                    first = False
                if isinstance(event, TextDelta):
                    if plan.sources:
                        texts.setdefault(index, []).append(event.text)
                    if not event.text and not (plan.want_logprobs and event.tokens):
                        continue
                    yield chunk(
                        index,
                        ChoiceDelta(content=event.text),
                        logprobs=ChunkLogprobs(
                            content=[token_logprob(t) for t in event.tokens], refusal=None
                        )
                        if plan.want_logprobs
                        else None,
                    )
                elif isinstance(event, ReasoningDelta):
                    yield chunk(index, with_reasoning(ChoiceDelta(), event.text))
                elif isinstance(event, ToolCallStarted) and plan.legacy_functions:
                    call = ChoiceDeltaFunctionCall(name=event.name, arguments="")
                    if first:
                        delta = ChoiceDelta(role="assistant", content=None, function_call=call)
                    else:
                        delta = ChoiceDelta(function_call=call)
                    yield chunk(index, delta)
                elif isinstance(event, ToolCallArgumentsDelta) and plan.legacy_functions:
                    call = ChoiceDeltaFunctionCall(arguments=event.delta)
                    yield chunk(index, ChoiceDelta(function_call=call))
                elif isinstance(event, ToolCallStarted):
                    if event.custom:
                        custom_calls.add((index, event.index))
                        start = ChoiceDeltaToolCall(index=event.index, id=event.id)
                        start.custom = {"name": event.name, "input": ""}  # type: ignore[attr-defined]
                    else:
                        start = ChoiceDeltaToolCall(
                            index=event.index,
                            id=event.id,
                            type="function",
                            function=ChoiceDeltaToolCallFunction(name=event.name, arguments=""),
                        )
                    if first:
                        delta = ChoiceDelta(role="assistant", content=None, tool_calls=[start])
                    else:
                        delta = ChoiceDelta(tool_calls=[start])
                    yield chunk(index, delta)
                elif isinstance(event, ToolCallArgumentsDelta):
                    if (index, event.index) in custom_calls:
                        piece = ChoiceDeltaToolCall(index=event.index)
                        piece.custom = {"input": event.delta}  # type: ignore[attr-defined]
                    else:
                        piece = ChoiceDeltaToolCall(
                            index=event.index,
                            function=ChoiceDeltaToolCallFunction(arguments=event.delta),
                        )
                    yield chunk(index, ChoiceDelta(tool_calls=[piece]))
                elif isinstance(event, Finished):
                    if plan.sources and texts.get(index):
                        scanner = CitationScanner(plan.sources)
                        found = scanner.scan("".join(texts[index]))
                        if found:
                            # All at once: the SDK's stream helper cannot merge a list of
                            # unindexed objects sent in pieces.
                            cited = ChoiceDelta()
                            cited.annotations = [c.chat_annotation() for c in found]  # type: ignore[attr-defined]
                            yield chunk(index, cited)
                    tally.add(event)
                    yield chunk(index, ChoiceDelta(), finish_reason=plan.finish_reason(event))
        finally:
            await events.aclose()  # every choice stops when the client goes or one fails


@dataclass
class _Tally:
    """What the choices used, summed as each finishes."""

    completion: int = 0
    reasoning: int = 0
    cached: int | None = None  # the prompt counts once: as the first choice found it
    prompt: int | None = None

    def add(self, finished: Finished) -> None:
        self.completion += finished.completion_tokens
        self.reasoning += finished.reasoning_tokens
        if self.cached is None:
            self.cached = finished.cached_tokens
        if self.prompt is None:
            self.prompt = finished.prompt_tokens


FinishReasonOut = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
_TIERS: tuple[ServiceTier, ...] = ("auto", "default", "flex", "scale", "priority")


def _service_tier(request: ChatCompletionRequest) -> ServiceTier:
    """The tier the client asked for, echoed as OpenAI does; unknown ones read as default."""
    for tier in _TIERS:
        if request.service_tier == tier:
            return tier
    return "default"
