"""What a generation yields, in the terms Chat, Completions and Responses share.

A backend turns one prompt into these events: deltas of text, reasoning and tool calls as
they become final, then exactly one :class:`Finished` whose totals agree with the deltas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from oasis.core.conversation import ToolCall
from oasis.core.types import GeneratedToken

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


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
    """A tool call begins: ``index`` counts calls within this generation from 0.
    ``custom``: a custom tool's call, whose argument deltas are its raw input."""

    index: int
    id: str
    name: str
    custom: bool = False


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
