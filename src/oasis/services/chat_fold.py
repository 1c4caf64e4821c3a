"""A whole chat completion, folded from the chunks its stream would send.

A non-streamed create runs the very chunk stream a streamed one sends and folds it here,
so the two can never disagree about text, tool calls, reasoning or logprobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionTokenLogprob,
)
from openai.types.chat.chat_completion import Choice, ChoiceLogprobs
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.chat.chat_completion_message import Annotation, FunctionCall
from openai.types.chat.chat_completion_message_function_tool_call import Function

ServiceTier = Literal["auto", "default", "flex", "scale", "priority"]

_Carrier = TypeVar("_Carrier", ChatCompletionMessage, ChoiceDelta)


def with_reasoning(target: _Carrier, text: str | None) -> _Carrier:
    """``target`` with a thinking model's reasoning as ``reasoning_content``.

    OpenAI's Chat Completions never shows reasoning, so the SDK's types have no field for
    it; DeepSeek's API, llama.cpp's server and vLLM return it under this name, and the
    SDK keeps such extra fields (``message.reasoning_content``). Models that do not think
    never carry it.
    """
    if text:
        target.reasoning_content = text  # type: ignore[attr-defined]
    return target


@dataclass
class _Call:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass
class _ChoiceFold:
    """One choice's deltas, gathered."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    function_call: _Call | None = None  # the deprecated `functions` form
    logprobs: list[ChatCompletionTokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    annotations: list[Any] = field(default_factory=list)  # url citations, sent once

    def add(self, choice: ChunkChoice) -> None:
        delta = choice.delta
        if delta.content:
            self.content.append(delta.content)
        reasoning = getattr(delta, "reasoning_content", None)
        if reasoning:
            self.reasoning.append(reasoning)
        for call in delta.tool_calls or []:
            if call.id is not None:
                name = call.function.name if call.function else None
                self.calls[call.index] = _Call(call.id, name or "")
            if call.function and call.function.arguments:
                self.calls[call.index].arguments.append(call.function.arguments)
        function = delta.function_call
        if function is not None:
            if function.name is not None:
                self.function_call = _Call("", function.name)
            if function.arguments and self.function_call is not None:
                self.function_call.arguments.append(function.arguments)
        self.annotations += getattr(delta, "annotations", None) or []
        if choice.logprobs is not None and choice.logprobs.content:
            self.logprobs.extend(choice.logprobs.content)
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason

    def message(self) -> ChatCompletionMessage:
        """The assistant's message: text, tool calls or both (content null beside calls
        when there is no text)."""
        text = "".join(self.content)
        reasoning = "".join(self.reasoning) or None
        if self.function_call is not None:
            call = self.function_call
            message = ChatCompletionMessage(
                role="assistant",
                content=text or None,
                refusal=None,
                function_call=FunctionCall(name=call.name, arguments="".join(call.arguments)),
            )
        elif self.calls:
            message = ChatCompletionMessage(
                role="assistant",
                content=text or None,
                refusal=None,
                tool_calls=[
                    ChatCompletionMessageFunctionToolCall(
                        id=call.id,
                        type="function",
                        function=Function(name=call.name, arguments="".join(call.arguments)),
                    )
                    for _, call in sorted(self.calls.items())
                ],
            )
        else:
            message = ChatCompletionMessage(role="assistant", content=text, refusal=None)
        if self.annotations:
            message.annotations = [Annotation.model_validate(a) for a in self.annotations]
        return with_reasoning(message, reasoning)


class ChatCompletionFold:
    """Feed it a completion's chunks in order; :meth:`result` is the whole completion."""

    def __init__(self, *, logprobs: bool) -> None:
        self._logprobs = logprobs
        self._choices: dict[int, _ChoiceFold] = {}
        self._last: ChatCompletionChunk | None = None
        self.usage: CompletionUsage | None = None  # the final chunk's, or set directly

    def add(self, chunk: ChatCompletionChunk) -> None:
        self._last = chunk
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            self._choices.setdefault(choice.index, _ChoiceFold()).add(choice)

    def result(self, service_tier: ServiceTier) -> ChatCompletion:
        """The completion; the usage must be known (the final usage chunk, or set)."""
        assert self._last is not None and self.usage is not None
        choices = [
            Choice(
                index=index,
                message=fold.message(),
                finish_reason=fold.finish_reason,  # type: ignore[arg-type]
                logprobs=ChoiceLogprobs(content=fold.logprobs, refusal=None)
                if self._logprobs
                else None,
            )
            for index, fold in sorted(self._choices.items())
        ]
        return ChatCompletion(
            id=self._last.id,
            object="chat.completion",
            created=self._last.created,
            model=self._last.model,
            choices=choices,
            usage=self.usage,
            system_fingerprint=self._last.system_fingerprint,
            service_tier=service_tier,
        )
