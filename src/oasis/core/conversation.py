"""One internal spelling of a conversation, shared by Chat Completions and Responses.

A chat ``messages`` list and a Responses ``input`` item list both convert to a
:class:`Conversation`; the generation core never sees either wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "developer", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A function call the assistant made. ``arguments`` is the JSON text, as on the wire."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Message:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # set on role "tool"
    name: str | None = None
    reasoning: str | None = None


@dataclass(frozen=True)
class FunctionTool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool = False


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    tools: tuple[FunctionTool, ...] = field(default=())
