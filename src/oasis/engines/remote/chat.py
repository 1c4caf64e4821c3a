"""The chat backend for an OpenAI-compatible server (vLLM, SGLang, llama-server, …).

The server does its own templating, tool-call parsing and constrained decoding, so a
conversation goes out as chat ``messages`` with ``tools``, ``tool_choice`` and
``response_format`` as they are, and its streamed chunks come back as our generation
events. Each run (one choice) is one upstream request; closing its event stream closes
the upstream connection, which is how the server learns that the client went away.

The prompt's token count is not known before the server answers (its tokenizer is
remote): :class:`RemotePrompt` counts 0 and the :class:`Finished` event carries the
server's own ``usage``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from oasis.core.backend import EventStream, Prompt
from oasis.core.conversation import Conversation, Message, ToolCall, split_parts
from oasis.core.events import (
    Finished,
    FinishReason,
    GenerationEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallDone,
    ToolCallStarted,
)
from oasis.core.options import GenerationOptions, callable_tools, tools_in_play
from oasis.core.pictures import data_url
from oasis.core.types import GeneratedToken, SamplingParams, TokenLogprob
from oasis.engines.remote.upstream import UpstreamPool, event_error
from oasis.errors import EngineUnreachableError, UnsupportedError
from oasis.ids import new_id
from oasis.models.specs import ModelSpec

# The room a prompt has when the operator did not say how long the server's context is:
# no limit from us; the server refuses what does not fit (a 400 naming the input).
UNBOUNDED = 1 << 30

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


@dataclass(frozen=True)
class RemotePrompt(Prompt):
    """A request body for the server, less sampling: ``path`` is where it goes."""

    path: str = "/chat/completions"
    body: dict[str, Any] = field(default_factory=dict)
    param: str = "messages"  # what the client called the input, for the server's 400s


class RemoteChatBackend:
    """A :class:`~oasis.core.backend.ChatBackend` over an OpenAI-compatible server."""

    supports_prompt_logprobs = False
    supports_token_prompts = False
    # Image parts go upstream as data URLs; the server says whether its model reads them.
    supports_images = True
    vocab_size: int | None = None

    def __init__(self, spec: ModelSpec, pool: UpstreamPool, upstream_model: str) -> None:
        self.spec = spec
        self.pool = pool
        self.upstream_model = upstream_model
        options = spec.options
        context = options.get("context_length")
        self._room = int(context) if context else UNBOUNDED
        # llama-cpp-python's server takes a schema as {"type": "json_object", "schema": …}.
        self._schema_dialect = str(options.get("structured_output", "json_schema"))
        self._stream_usage = bool(options.get("stream_usage", True))

    async def prepare(
        self, conversation: Conversation, options: GenerationOptions, *, param: str
    ) -> RemotePrompt:
        """The chat request for ``conversation``; the server checks that it fits."""
        body: dict[str, Any] = {"messages": [_message(m) for m in conversation.messages]}
        tools = tools_in_play(options)
        if options.allowed_tools is not None:
            tools = callable_tools(options)  # most servers lack tool_choice allowed_tools
        if any(t.custom is not None for t in tools):
            # Their raw-text calls are our decoder's format; upstream servers speak
            # function calls only.
            raise UnsupportedError(
                "Custom tools need a model this server runs itself; this model is served "
                "by a remote engine.",
                param="tools",
            )
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        **({"description": t.description} if t.description else {}),
                        "parameters": t.parameters or {"type": "object", "properties": {}},
                        **({"strict": True} if t.strict else {}),
                    },
                }
                for t in tools
            ]
            choice = options.tool_choice
            body["tool_choice"] = (
                choice
                if choice in {"auto", "required"}
                else {"type": "function", "function": {"name": choice}}
            )
            if not options.parallel_tool_calls:
                body["parallel_tool_calls"] = False
        fmt = options.response_format
        if fmt.type == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif fmt.type == "json_schema" and self._schema_dialect == "json_object_schema":
            body["response_format"] = {"type": "json_object", "schema": fmt.schema}
        elif fmt.type == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": fmt.name or "response",
                    "schema": fmt.schema,
                    "strict": fmt.strict,
                },
            }
        return RemotePrompt("", 0, self._room, body=body, param=param)

    async def prepare_text(self, prompt: str | list[int], *, param: str) -> RemotePrompt:
        """A raw prompt for the server's ``/completions``."""
        assert isinstance(prompt, str), "token prompts are refused before this"
        return RemotePrompt(
            prompt, 0, self._room, path="/completions", body={"prompt": prompt}, param=param
        )

    def generate(
        self, runs: Sequence[tuple[Prompt, SamplingParams]], stop: Sequence[str] | None = None
    ) -> list[EventStream]:
        """One upstream request per run; each is sent when its stream is first read."""
        streams: list[EventStream] = []
        for prompt, params in runs:
            assert isinstance(prompt, RemotePrompt), "a prompt from another backend"
            body = {**prompt.body, **self._sampling(prompt, params, stop)}
            streams.append(_Stream(self._events(prompt, body)))
        return streams

    def _sampling(
        self, prompt: RemotePrompt, params: SamplingParams, stop: Sequence[str] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.upstream_model,
            "stream": True,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if self._stream_usage:
            body["stream_options"] = {"include_usage": True}
        if params.max_tokens < prompt.room:  # else the server's own limit applies
            body["max_tokens"] = params.max_tokens
        if params.seed is not None:
            body["seed"] = params.seed
        if params.presence_penalty:
            body["presence_penalty"] = params.presence_penalty
        if params.frequency_penalty:
            body["frequency_penalty"] = params.frequency_penalty
        if params.logit_bias:
            body["logit_bias"] = {str(k): v for k, v in params.logit_bias.items()}
        if stop:
            body["stop"] = list(stop)
        if params.top_logprobs is not None:
            if prompt.path == "/completions":
                body["logprobs"] = params.top_logprobs
            else:
                body["logprobs"] = True
                body["top_logprobs"] = params.top_logprobs
        return body

    async def _events(
        self, prompt: RemotePrompt, body: dict[str, Any]
    ) -> AsyncGenerator[GenerationEvent, None]:
        """The server's chunks as events, then one :class:`Finished`."""

        def client_param(name: str | None) -> str | None:
            # The server names its own fields; the client sent `input` or `prompt`.
            return prompt.param if name in {"messages", "prompt", "input"} else name

        answer = await self.pool.stream(prompt.path, body, client_param)
        state = _Fold()
        try:
            async for event in answer.events():
                error = event_error(event, self.spec.id)
                if error is not None:
                    raise error
                for out in state.feed(event):
                    yield out
        finally:
            await answer.aclose()
        if state.reason is None:
            raise EngineUnreachableError(
                f"The engine of `{self.spec.id}` ended its answer without a finish reason."
            )
        for out in state.finish():
            yield out

    async def reachable(self) -> bool:
        """For ``/health/ready``: whether an upstream server answers."""
        return await self.pool.reachable()

    async def close(self) -> None:
        await self.pool.close()


class _Stream:
    """One run's events; ``aclose()`` hangs up on the server if the request is out."""

    def __init__(self, events: AsyncGenerator[GenerationEvent, None]) -> None:
        self._events = events

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> GenerationEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()


class _Call:
    """One tool call as its deltas arrive."""

    def __init__(self, index: int, call_id: str | None) -> None:
        self.index = index
        self.id = call_id or new_id("call")
        self.name = ""
        self.arguments: list[str] = []
        self.started = False
        self.done = False


class _Fold:
    """Reads one choice's chunks: deltas out as they come, totals kept for Finished."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[Any, _Call] = {}
        self.reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.pieces = 0  # chunks with output: the token count when no usage comes

    def feed(self, chunk: dict[str, Any]) -> list[GenerationEvent]:
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        out: list[GenerationEvent] = []
        for choice in chunk.get("choices") or []:
            self.reason = choice.get("finish_reason") or self.reason
            if "text" in choice:  # /completions
                out += self._text(choice.get("text") or "", _completion_logprobs(choice))
                continue
            delta = choice.get("delta") or {}
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str) and thought:
                self.pieces += 1
                self.reasoning.append(thought)
                out.append(ReasoningDelta(thought))
            out += self._text(delta.get("content") or "", _chat_logprobs(choice))
            for call in delta.get("tool_calls") or []:
                out += self._call(call)
        return out

    def _text(self, text: str, tokens: list[GeneratedToken]) -> list[GenerationEvent]:
        if not text and not tokens:
            return []
        self.pieces += 1
        self.text.append(text)
        return [TextDelta(text, tokens)]

    def _call(self, delta: dict[str, Any]) -> list[GenerationEvent]:
        key = delta.get("index", delta.get("id", len(self.calls)))
        out: list[GenerationEvent] = []
        call = self.calls.get(key)
        if call is None:
            out += self._close_calls()  # a new call ends the ones before it
            call = self.calls[key] = _Call(len(self.calls), delta.get("id"))
        function = delta.get("function") or {}
        if function.get("name") and not call.name:
            call.name = str(function["name"])
        arguments = function.get("arguments") or ""
        if arguments:
            self.pieces += 1
            call.arguments.append(arguments)
        if not call.started and call.name:
            call.started = True
            out.append(ToolCallStarted(call.index, call.id, call.name))
            if call.arguments:
                out.append(ToolCallArgumentsDelta(call.index, "".join(call.arguments)))
        elif call.started and arguments:
            out.append(ToolCallArgumentsDelta(call.index, arguments))
        return out

    def _close_calls(self) -> list[GenerationEvent]:
        out: list[GenerationEvent] = []
        for call in self.calls.values():
            if call.started and not call.done:
                call.done = True
                out.append(ToolCallDone(call.index, self._tool_call(call)))
        return out

    @staticmethod
    def _tool_call(call: _Call) -> ToolCall:
        return ToolCall(call.id, call.name, "".join(call.arguments) or "{}")

    def finish(self) -> list[GenerationEvent]:
        out = self._close_calls()
        calls = tuple(self._tool_call(c) for c in self.calls.values() if c.started)
        reason = _FINISH.get(self.reason or "", "stop")
        if calls and reason == "stop":
            reason = "tool_calls"
        usage = self.usage or {}
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        out.append(
            Finished(
                reason,
                "".join(self.text),
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or self.pieces),
                tool_calls=calls,
                reasoning="".join(self.reasoning) or None,
                reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
                cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            )
        )
        return out


def _message(message: Message) -> dict[str, Any]:
    """One message as chat ``messages`` spell it (``developer`` as ``system``, which every
    chat template knows; an assistant's calls with ``content`` "", not null, which some
    servers refuse)."""
    role = "system" if message.role == "developer" else message.role
    out: dict[str, Any] = {"role": role, "content": _content(message)}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name:
        out["name"] = message.name
    return out


def _content(message: Message) -> str | list[dict[str, Any]]:
    """A message's content: its text, or (with images) text and ``image_url`` parts, each
    image as a data URL."""
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = []
    for part in split_parts(message):
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        else:
            assert part.data is not None and part.mime is not None  # loaded by the core
            url = {"url": data_url(part.data, part.mime), "detail": part.detail}
            parts.append({"type": "image_url", "image_url": url})
    return parts


def _piece(entry: dict[str, Any]) -> bytes:
    raw = entry.get("bytes")
    if isinstance(raw, list):
        return bytes(raw)
    return str(entry.get("token", "")).encode("utf-8")


def _chat_logprobs(choice: dict[str, Any]) -> list[GeneratedToken]:
    """Chat ``logprobs.content`` entries as tokens (ids are the server's, unknown here)."""
    content = (choice.get("logprobs") or {}).get("content") or []
    return [
        GeneratedToken(
            -1,
            _piece(entry),
            False,
            logprob=float(entry.get("logprob", 0.0)),
            top_logprobs=tuple(
                TokenLogprob(-1, _piece(alt), float(alt.get("logprob", 0.0)))
                for alt in entry.get("top_logprobs") or []
            ),
        )
        for entry in content
        if isinstance(entry, dict)
    ]


def _completion_logprobs(choice: dict[str, Any]) -> list[GeneratedToken]:
    """Legacy completions ``logprobs`` (parallel lists) as tokens."""
    logprobs = choice.get("logprobs") or {}
    tokens = logprobs.get("tokens") or []
    values = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or []
    out: list[GeneratedToken] = []
    for i, token in enumerate(tokens):
        value = values[i] if i < len(values) else None
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        out.append(
            GeneratedToken(
                -1,
                str(token).encode("utf-8"),
                False,
                logprob=float(value) if value is not None else None,
                top_logprobs=tuple(
                    TokenLogprob(-1, str(t).encode("utf-8"), float(lp)) for t, lp in top.items()
                ),
            )
        )
    return out
