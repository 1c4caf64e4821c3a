"""The harmony format of gpt-oss models: its channels read as our events.

A gpt-oss model answers in messages, each a header and a body (the call's header
is one line, cut here)::

    <|channel|>analysis<|message|>…thinking…<|end|>
    <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json
    <|message|>{"city":"Paris"}<|call|>
    <|start|>assistant<|channel|>final<|message|>…the answer…<|return|>

``analysis`` is reasoning; a message with a recipient (``to=functions.NAME``, or a built-in
tool such as ``to=browser.search``) is a tool call whose body is its JSON arguments;
``final`` and recipient-less ``commentary`` (a preamble the user may see) are answer text.
The parser reads the model's text as it streams (special tokens rendered as their text)
and yields the same parsed events as :class:`~oasis.core.tool_calls.ToolCallParser`, plus
:class:`ThoughtPiece` for reasoning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from oasis.core.conversation import ToolCall
from oasis.core.json_schema import lark_literal
from oasis.core.tool_calls import (
    CallArguments,
    CallDone,
    CallStarted,
    ParsedEvent,
    TextPiece,
    new_call_id,
)

CHANNEL = "<|channel|>"
MESSAGE = "<|message|>"
START = "<|start|>"
ASSISTANT_START = START + "assistant"
FINAL_HEADER = CHANNEL + "final" + MESSAGE
# Markers that end a message's body.
_ENDS = ("<|end|>", "<|call|>", "<|return|>", START)
_RECIPIENT = re.compile(r"\bto=([^\s<]+)")
_MARKER = re.compile(r"<\|[a-z_]+\|>")
# The built-in tool gpt-oss was trained to browse with, and the hosted tool it stands for:
# web search takes the arguments of all three (it tells them apart by their fields).
BROWSER_TOOLS: Mapping[str, str] = {
    "browser.search": "web_search",
    "browser.open": "web_search",
    "browser.find": "web_search",
}


def call_header(function: str, builtin: str | None = None) -> str:
    """The header of the assistant's call of ``function`` (after ``<|start|>assistant``):
    a built-in tool (``browser.search``) on the analysis channel, as gpt-oss calls it,
    else ``functions.NAME`` on commentary with JSON arguments."""
    if builtin is not None:
        return f"{CHANNEL}analysis to={builtin} code{MESSAGE}"
    return f"{CHANNEL}commentary to=functions.{function} <|constrain|>json{MESSAGE}"


def header_lark(header: str, special: Callable[[str], bool]) -> str:
    """``header`` as a Lark sequence: its text as string literals, and each ``<|…|>``
    marker as the special token it is where ``special`` says the model has one (a
    grammar's text cannot match a special token), else as text."""
    parts: list[str] = []
    at = 0
    for match in _MARKER.finditer(header):
        if match.start() > at:
            parts.append(lark_literal(header[at : match.start()]))
        marker = match[0]
        parts.append(marker if special(marker) else lark_literal(marker))
        at = match.end()
    if at < len(header):
        parts.append(lark_literal(header[at:]))
    return " ".join(parts)


def speaks_harmony(template_source: str) -> bool:
    """Whether a chat template renders the harmony format (gpt-oss)."""
    return CHANNEL in template_source and MESSAGE in template_source


@dataclass
class ThoughtPiece:
    """Reasoning text (the ``analysis`` channel)."""

    text: str


HarmonyEvent = ParsedEvent | ThoughtPiece


@dataclass
class HarmonyParser:
    """Splits a harmony stream into reasoning, answer text and tool calls, incrementally.

    ``aliases`` renames a built-in recipient to the function the caller offered for it
    (``browser.search`` → ``web_search``); ``functions.NAME`` is always ``NAME``.
    """

    aliases: Mapping[str, str] = field(default_factory=dict)
    calls: list[ToolCall] = field(default_factory=list)
    text: str = ""
    reasoning: str = ""
    _buf: str = ""
    _in_body: bool = False
    _header: str = ""
    _call: CallStarted | None = None
    _args: str = ""

    def feed(self, text: str) -> list[HarmonyEvent]:
        """Events for ``text``; a marker cut between two feeds waits for its end."""
        self._buf += text
        out: list[HarmonyEvent] = []
        while self._step(out, final=False):
            pass
        return out

    def finish(self) -> list[HarmonyEvent]:
        """Flush at the end of generation (an end token closes the last message)."""
        out: list[HarmonyEvent] = []
        while self._step(out, final=True):
            pass
        if self._in_body:
            self._body(self._buf, out)
            self._buf = ""
            self._close(out)
        return out

    def _step(self, out: list[HarmonyEvent], *, final: bool) -> bool:
        if not self._in_body:
            at = self._buf.find(MESSAGE)
            if at < 0:
                return False
            self._header = self._buf[:at]
            self._buf = self._buf[at + len(MESSAGE) :]
            self._open(out)
            return True
        ends = [(self._buf.find(m), m) for m in _ENDS if m in self._buf]
        if ends:
            at, marker = min(ends)
            self._body(self._buf[:at], out)
            self._buf = self._buf[at + len(marker) :]
            self._close(out)
            if marker == START:
                self._buf = START + self._buf  # the next message's header starts here
            return True
        # Hold back what may be the start of a marker cut in two.
        keep = 0 if final else _partial_marker(self._buf)
        if len(self._buf) > keep:
            self._body(self._buf[: len(self._buf) - keep], out)
            self._buf = self._buf[len(self._buf) - keep :]
        return False

    def _open(self, out: list[HarmonyEvent]) -> None:
        self._in_body = True
        found = _RECIPIENT.search(self._header)
        if found is None:
            return
        recipient = found[1]
        name = self.aliases.get(recipient) or recipient.removeprefix("functions.")
        self._call = CallStarted(len(self.calls), new_call_id(), name)
        self._args = ""
        out.append(self._call)

    def _channel(self) -> str:
        after = self._header.rsplit(CHANNEL, 1)[-1] if CHANNEL in self._header else ""
        return after.split()[0] if after.split() else ""

    def _body(self, text: str, out: list[HarmonyEvent]) -> None:
        if not text:
            return
        if self._call is not None:
            self._args += text
            out.append(CallArguments(self._call.index, text))
        elif self._channel() == "analysis":
            self.reasoning += text
            out.append(ThoughtPiece(text))
        else:
            self.text += text
            out.append(TextPiece(text))

    def _close(self, out: list[HarmonyEvent]) -> None:
        if self._call is not None:
            call = ToolCall(self._call.id, self._call.name, self._args.strip() or "{}")
            self.calls.append(call)
            out.append(CallDone(self._call.index, call))
        self._in_body = False
        self._header = ""
        self._call = None


def _partial_marker(text: str) -> int:
    """How many characters at the end of ``text`` could begin a ``<|…|>`` marker."""
    at = text.rfind("<")
    if at < 0:
        return 0
    tail = text[at:]
    if "|>" in tail:
        return 0
    return len(tail) if len(tail) <= 16 else 0
