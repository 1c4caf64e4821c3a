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
    arguments: str  # a custom tool's call: its free-form input, as the model wrote it
    custom: bool = False


@dataclass(frozen=True)
class Message:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # set on role "tool"
    name: str | None = None
    reasoning: str | None = None


@dataclass(frozen=True)
class InputFormat:
    """What a custom tool's free-form input must be: any text, or text a grammar accepts
    (``syntax`` "lark" or "regex", its source in ``definition``)."""

    syntax: Literal["text", "lark", "regex"] = "text"
    definition: str = ""


@dataclass(frozen=True)
class FunctionTool:
    """A tool the model may call: a function taking JSON ``parameters``, or (``custom``
    set) a custom tool taking free-form text."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool = False
    custom: InputFormat | None = None


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    tools: tuple[FunctionTool, ...] = field(default=())
