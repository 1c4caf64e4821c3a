"""Tool calls in model text: how tools are shown to a model, and how calls are read back.

One wire format for calls, the Hermes/Qwen one that Qwen2.5's own template teaches::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

A custom tool (free-form text input) is called with its name alone, then the raw input::

    <tool_call>
    {"name": "run_sql"}
    SELECT 1
    </tool_call>

The input is written as is, not as a JSON string, so that a grammar over it (Lark or a
regex) constrains exactly what the tool receives.

Models whose template renders tools in this format get their native template; any other
model gets :func:`generic_tool_prompt` and the history spelled in the same markup, so one
parser and one grammar serve every model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from oasis.core.conversation import Conversation, FunctionTool, Message, ToolCall
from oasis.core.text import held_back
from oasis.ids import new_id

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
# Qwen2.5-Coder often writes a call as a fenced JSON block instead; read those too.
FENCE_OPEN = "```json"
FENCE_CLOSE = "```"


def new_call_id() -> str:
    return new_id("call", nbytes=12)


def tool_dicts(tools: tuple[FunctionTool, ...]) -> list[dict[str, Any]]:
    """Tools as OpenAI-style dicts, the shape chat templates expect. A custom tool shows
    as a function whose parameters are one string: its input, and what that must be."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        if tool.custom is not None:
            function["parameters"] = {"type": "string", "description": _input_rule(tool)}
        else:
            function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    return out


def _input_rule(tool: FunctionTool) -> str:
    """How a custom tool's input is described to the model."""
    custom = tool.custom
    assert custom is not None
    if custom.syntax == "text":
        return "Free-form text input (not JSON)."
    return (
        f"Free-form text input (not JSON) that this {custom.syntax} grammar accepts:\n"
        f"{custom.definition}"
    )


def template_speaks_calls(source: str) -> bool:
    """Whether a chat template renders tools and calls in our ``<tool_call>`` format."""
    return "tools" in source and CALL_OPEN in source


def generic_tool_prompt(tools: tuple[FunctionTool, ...], tool_choice: str) -> str:
    """A system-prompt section teaching a model without tool support how to call tools."""
    lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in tool_dicts(tools))
    if tool_choice == "auto":
        when = (
            "If a function helps answer the user, call it; otherwise answer the user "
            "directly in plain text."
        )
    else:
        when = "You must call a function now."
    return (
        "# Tools\n\nYou can call functions. Their signatures, one JSON object per line:\n"
        f"<tools>\n{lines}\n</tools>\n\n"
        "To call a function, write a JSON object with its name and arguments inside "
        "<tool_call></tool_call> tags, like this:\n"
        '<tool_call>\n{"name": "<function-name>", "arguments": <arguments-json-object>}\n'
        "</tool_call>\n"
        f"{_custom_rule(tools)}{when}"
    )


def _custom_rule(tools: tuple[FunctionTool, ...]) -> str:
    """How to call custom tools, when some are offered."""
    if not any(t.custom is not None for t in tools):
        return ""
    return (
        'A function whose parameters are {"type": "string"} takes raw text instead: write '
        "its name alone, then the text on the following lines:\n"
        '<tool_call>\n{"name": "<function-name>"}\n<the input text>\n</tool_call>\n'
    )


def call_markup(call: ToolCall) -> str:
    """One past call, spelled as the model would have written it."""
    if call.custom:
        head = json.dumps({"name": call.name}, ensure_ascii=False)
        return f"{CALL_OPEN}\n{head}\n{call.arguments}\n{CALL_CLOSE}"
    try:
        arguments: Any = json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        arguments = call.arguments
    body = json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"


def spell_out_tool_turns(conversation: Conversation) -> Conversation:
    """The history for a template without tool support: calls and results as plain text.

    Assistant tool calls become ``<tool_call>`` markup in the assistant's content; tool
    results become one user turn (consecutive results merged) that says which function
    each result came from.
    """
    names: dict[str, str] = {}
    messages: list[Message] = []
    merging = False
    for message in conversation.messages:
        if message.role == "assistant" and message.tool_calls:
            parts = [message.content] if message.content else []
            parts.extend(call_markup(call) for call in message.tool_calls)
            names.update((call.id, call.name) for call in message.tool_calls)
            messages.append(Message(role="assistant", content="\n".join(parts)))
            merging = False
        elif message.role == "tool":
            name = names.get(message.tool_call_id or "", message.name or "the function")
            line = f"Result of {name}: {message.content}"
            if merging:
                messages[-1] = Message("user", f"{messages[-1].content}\n{line}")
            else:
                messages.append(Message("user", line))
            merging = True
        else:
            messages.append(message)
            merging = False
    return Conversation(tuple(messages), conversation.tools)


# --- reading calls back ----------------------------------------------------------------

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')
# A custom tool's call: its name alone, then the raw input on the next line.
_CUSTOM_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*\}[ \t]*\n')
_INPUT_CLOSES = ("\n" + CALL_CLOSE, CALL_CLOSE)


@dataclass
class TextPiece:
    text: str


@dataclass
class CallStarted:
    index: int
    id: str
    name: str
    custom: bool = False


@dataclass
class CallArguments:
    index: int
    delta: str


@dataclass
class CallDone:
    index: int
    call: ToolCall


ParsedEvent = TextPiece | CallStarted | CallArguments | CallDone


@dataclass
class _JsonValueScanner:
    """Finds where one JSON value ends, fed a piece at a time."""

    depth: int = 0
    in_string: bool = False
    escaped: bool = False
    started: bool = False
    scalar: bool = False

    def feed(self, text: str) -> tuple[int, bool]:
        """How many chars of ``text`` belong to the value, and whether it is complete."""
        for i, ch in enumerate(text):
            if not self.started:
                if ch.isspace():
                    continue
                self.started = True
                if ch in "{[":
                    self.depth = 1
                elif ch == '"':
                    self.in_string = True
                else:
                    self.scalar = True
                continue
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
                    if self.depth == 0:
                        return i + 1, True
                continue
            if self.scalar:
                if ch in ",}] \n\t\r":
                    return i, True
                continue
            if ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth == 0:
                    return i + 1, True
        return len(text), False


@dataclass
class ToolCallParser:
    """Splits streamed model text into plain text and tool calls, incrementally.

    Markup never reaches the text. Trailing whitespace is held until real text follows,
    so the blank lines around calls do not become content. ``custom`` names the custom
    tools, whose calls carry raw input (see the module docstring).
    """

    custom: frozenset[str] = frozenset()
    calls: list[ToolCall] = field(default_factory=list)
    text: str = ""
    _buf: str = ""
    _state: str = "text"  # text | head | args | tail | fence | input
    _held_space: str = ""
    _id: str = ""
    _name: str = ""
    _args: str = ""
    _scanner: _JsonValueScanner = field(default_factory=_JsonValueScanner)

    def feed(self, text: str) -> list[ParsedEvent]:
        self._buf += text
        out: list[ParsedEvent] = []
        while self._step(out):
            pass
        return out

    def finish(self) -> list[ParsedEvent]:
        """Flush at the end of generation; an unfinished call is closed as it stands."""
        out: list[ParsedEvent] = []
        if self._state == "text":
            self._emit_text(self._buf, out, final=True)
        elif self._state == "fence":
            self._fence(self._buf, out, closed=False)
            self._emit_text("", out, final=True)
        elif self._state == "head":
            self._finish_raw(self._buf, out)
        elif self._state in {"args", "tail"}:
            if self._state == "args" and self._buf:
                self._args += self._buf
                out.append(CallArguments(len(self.calls), self._buf))
            self._done(out)
        elif self._state == "input":
            self._input(self._buf.removesuffix("\n"), out)
            self._done(out, custom=True)
        self._buf = ""
        self._state = "text"
        return out

    def _emit_text(self, text: str, out: list[ParsedEvent], final: bool = False) -> None:
        text = self._held_space + text
        body = text.rstrip()
        # Trailing whitespace waits for real text: around calls it is not content.
        self._held_space = "" if final else text[len(body) :]
        if body:
            out.append(TextPiece(body))
            self.text += body

    def _step(self, out: list[ParsedEvent]) -> bool:
        buf = self._buf
        if self._state == "text":
            at, marker = _first_marker(buf, (CALL_OPEN, FENCE_OPEN))
            if at >= 0:
                self._emit_text(buf[:at], out)
                self._buf = buf[at + len(marker) :]
                self._state = "head" if marker == CALL_OPEN else "fence"
                if marker == CALL_OPEN:
                    self._held_space = ""  # whitespace before a call is not content
                return True
            keep = held_back(buf, (CALL_OPEN, FENCE_OPEN))
            self._emit_text(buf[: len(buf) - keep], out)
            self._buf = buf[len(buf) - keep :]
            return False
        if self._state == "fence":
            close = buf.find(FENCE_CLOSE)
            if close < 0:
                return False
            self._fence(buf[:close], out)
            self._buf = buf[close + len(FENCE_CLOSE) :]
            self._state = "text"
            return True
        if self._state == "head":
            found = _HEAD.match(buf)
            if found:
                self._id = new_call_id()
                self._name = _unescape(found.group(1))
                self._args = ""
                self._scanner = _JsonValueScanner()
                out.append(CallStarted(len(self.calls), self._id, self._name))
                self._buf = buf[found.end() :]
                self._state = "args"
                return True
            custom = _CUSTOM_HEAD.match(buf)
            if custom and _unescape(custom.group(1)) in self.custom:
                self._id = new_call_id()
                self._name = _unescape(custom.group(1))
                self._args = ""
                out.append(CallStarted(len(self.calls), self._id, self._name, custom=True))
                self._buf = buf[custom.end() :]
                self._state = "input"
                return True
            close = buf.find(CALL_CLOSE)
            if close >= 0:  # not our layout: read the whole block as JSON
                self._finish_raw(buf[:close], out)
                self._buf = buf[close + len(CALL_CLOSE) :]
                self._state = "text"
                return True
            return False
        if self._state == "input":
            at, marker = _first_marker(buf, _INPUT_CLOSES)
            if at < 0:
                keep = held_back(buf, _INPUT_CLOSES)
                self._input(buf[: len(buf) - keep], out)
                self._buf = buf[len(buf) - keep :]
                return False
            self._input(buf[:at], out)
            self._done(out, custom=True)
            self._buf = buf[at + len(marker) :]
            self._state = "text"
            return True
        if self._state == "args":
            used, complete = self._scanner.feed(buf)
            piece = buf[:used]
            if not self._args:
                piece = piece.lstrip()
            if piece:
                self._args += piece
                out.append(CallArguments(len(self.calls), piece))
            self._buf = buf[used:]
            if complete:
                self._state = "tail"
                return True
            return False
        # tail: the rest of the JSON object, then the closing tag
        close = buf.find(CALL_CLOSE)
        if close >= 0:
            self._done(out)
            self._buf = buf[close + len(CALL_CLOSE) :]
            self._state = "text"
            return True
        return False

    def _fence(self, body: str, out: list[ParsedEvent], closed: bool = True) -> None:
        """A fenced JSON block: a call when it has a call's shape, else plain text."""
        if not self._finish_raw(body, out):
            block = FENCE_OPEN + body + (FENCE_CLOSE if closed else "")
            self._emit_text(block, out)
        else:
            self._held_space = ""

    def _input(self, piece: str, out: list[ParsedEvent]) -> None:
        """Part of a custom call's raw input."""
        if piece:
            self._args += piece
            out.append(CallArguments(len(self.calls), piece))

    def _done(self, out: list[ParsedEvent], *, custom: bool = False) -> None:
        if not self._args and not custom:
            # Cut off before its arguments: stream what the call will hold.
            self._args = "{}"
            out.append(CallArguments(len(self.calls), self._args))
        call = ToolCall(self._id, self._name, self._args, custom=custom)
        out.append(CallDone(len(self.calls), call))
        self.calls.append(call)

    def _finish_raw(self, body: str, out: list[ParsedEvent]) -> bool:
        """Read ``body`` as one call's JSON; False (and nothing emitted) if it is not one."""
        try:
            data = json.loads(body)
        except ValueError:
            return False  # not a call we can read; never leak the markup as text
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return False
        arguments = data.get("arguments", data.get("parameters", {}))
        if isinstance(arguments, str):
            text = arguments
        else:
            text = json.dumps(arguments, ensure_ascii=False)
        index = len(self.calls)
        self._id, self._name, self._args = new_call_id(), data["name"], text
        out.append(CallStarted(index, self._id, self._name))
        out.append(CallArguments(index, text))
        self._done(out)
        return True


def _first_marker(text: str, markers: tuple[str, ...]) -> tuple[int, str]:
    """The earliest of ``markers`` in ``text``: (position, marker), or (-1, "")."""
    best = (-1, "")
    for marker in markers:
        at = text.find(marker)
        if at >= 0 and (best[0] < 0 or at < best[0]):
            best = (at, marker)
    return best


def _unescape(raw: str) -> str:
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw
