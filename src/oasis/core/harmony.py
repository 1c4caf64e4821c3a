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

import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from oasis.core.conversation import Conversation, Message, ToolCall
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


def browser_tool(fields: Mapping[str, Any]) -> str:
    """Which browser tool a web search call's arguments stand for: ``browser.find`` (a
    ``pattern``), ``browser.open`` (a page ``id``, ``url`` or ``cursor`` without a
    query), else ``browser.search``."""
    if "pattern" in fields:
        return "browser.find"
    if "query" not in fields and any(k in fields for k in ("id", "url", "cursor")):
        return "browser.open"
    return "browser.search"


def browser_exchange(call: ToolCall, output: str) -> str:
    """A past browser call and its result as gpt-oss reads them: the assistant's call on
    the analysis channel (``to=browser.open``), then the tool's message to the assistant."""
    try:
        fields = json.loads(call.arguments or "{}")
    except ValueError:
        fields = {}
    tool = browser_tool(fields if isinstance(fields, dict) else {})
    return (
        f"{ASSISTANT_START}{call_header(call.name, tool)}{call.arguments}<|call|>"
        f"{START}{tool} to=assistant{CHANNEL}analysis{MESSAGE}{output}<|end|>"
    )


def with_browser_placeholders(
    conversation: Conversation,
) -> tuple[Conversation, dict[str, str]]:
    """``conversation`` with each web search call and its result (an assistant turn that
    calls only it, then the tool's answer) as one assistant message holding a placeholder,
    and the harmony text (:func:`browser_exchange`) each placeholder stands for.

    A chat template renders every call as ``functions.NAME``; the browser's calls are put
    back in their own form after rendering (:func:`put_back`)."""
    messages = list(conversation.messages)
    out: list[Message] = []
    texts: dict[str, str] = {}
    nonce = secrets.token_hex(4)
    i = 0
    while i < len(messages):
        message = messages[i]
        calls = message.tool_calls
        answers = messages[i + 1 : i + 1 + len(calls)]
        if (
            message.role == "assistant"
            and calls
            and not message.content
            and all(c.name in BROWSER_TOOLS.values() for c in calls)
            and len(answers) == len(calls)
            and all(
                a.role == "tool" and a.tool_call_id == c.id
                for a, c in zip(answers, calls, strict=True)
            )
        ):
            for n, (call, answer) in enumerate(zip(calls, answers, strict=True)):
                placeholder = f"OASIS_BROWSER_{nonce}_{len(texts)}"
                texts[placeholder] = browser_exchange(call, answer.content)
                reasoning = message.reasoning if n == 0 else None
                out.append(Message(role="assistant", content=placeholder, reasoning=reasoning))
            i += 1 + len(calls)
            continue
        out.append(message)
        i += 1
    return replace(conversation, messages=tuple(out)), texts


def put_back(rendered: str, texts: Mapping[str, str]) -> str | None:
    """``rendered`` with each placeholder's whole message (from its ``<|start|>`` to its
    end marker) replaced by its harmony text; None when a template did not render one."""
    for placeholder, text in texts.items():
        at = rendered.find(placeholder)
        start = rendered.rfind(START, 0, at)
        ends = [(rendered.find(m, at), m) for m in ("<|end|>", "<|return|>")]
        ends = [(e, m) for e, m in ends if e >= 0]
        if at < 0 or start < 0 or not ends or rendered.count(placeholder) != 1:
            return None
        end, marker = min(ends)
        rendered = rendered[:start] + text + rendered[end + len(marker) :]
    return rendered


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
