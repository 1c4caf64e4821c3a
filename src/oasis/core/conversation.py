"""One internal spelling of a conversation, shared by Chat Completions and Responses.

A chat ``messages`` list and a Responses ``input`` item list both convert to a
:class:`Conversation`; the generation core never sees either wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "developer", "user", "assistant", "tool"]

# Where each image of a message sits in its ``content`` (llama.cpp's mtmd marker, so a
# local multimodal model's prompt needs no rewriting); client text never carries it.
IMAGE_MARKER = "<__media__>"


@dataclass(frozen=True)
class Image:
    """An image part of a message, as the client gave it (``url``: a data URL or an
    http(s) URL; or ``file_id``: one of our Files) and, once the generation core has
    loaded it, its bytes and mime type. ``param`` names the part in the request."""

    param: str
    url: str | None = None
    file_id: str | None = None
    data: bytes | None = None
    mime: str | None = None
    detail: str = "auto"
    # Added by the server, not asked for by the client (a computer-use screenshot): a
    # model that reads text only is not shown it, rather than refusing the request.
    optional: bool = False


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
    # One per IMAGE_MARKER in ``content``, in order: what a vision model sees there.
    images: tuple[Image, ...] = ()


def joined_parts(parts: list[str | Image]) -> tuple[str, tuple[Image, ...]]:
    """A message's content parts (text, images) as its ``content`` with a marker where
    each image sits, and its images in order."""
    texts: list[str] = []
    images: list[Image] = []
    for part in parts:
        if isinstance(part, Image):
            texts.append(IMAGE_MARKER)
            images.append(part)
        else:
            texts.append(part.replace(IMAGE_MARKER, ""))
    return "".join(texts), tuple(images)


def split_parts(message: Message) -> list[str | Image]:
    """The inverse of :func:`joined_parts`: text pieces and images in order (empty text
    pieces left out)."""
    pieces = message.content.split(IMAGE_MARKER)
    out: list[str | Image] = []
    for i, piece in enumerate(pieces):
        if piece:
            out.append(piece)
        if i < len(message.images):
            out.append(message.images[i])
    return out


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

    @property
    def images(self) -> list[Image]:
        """Every image of every message, in order."""
        return [image for message in self.messages for image in message.images]
