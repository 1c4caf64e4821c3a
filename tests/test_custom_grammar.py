"""Custom tools in the core, without a model: how their calls are read back from text, and
what the call grammar lets a model write (llguidance over a byte-level tokenizer)."""

from __future__ import annotations

import pytest
from llguidance import LLMatcher, LLTokenizer

from oasis.core.constraints import tool_call_grammar
from oasis.core.conversation import FunctionTool, InputFormat, ToolCall
from oasis.core.tool_calls import CallArguments, CallDone, TextPiece, ToolCallParser, call_markup

WEATHER = FunctionTool(
    "weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
NOTE = FunctionTool("note", custom=InputFormat())
ORDER = FunctionTool("order", custom=InputFormat("regex", r"^ORD-[0-9]{2}/[a-z]+$"))
SAY = FunctionTool("say", custom=InputFormat("lark", 'start: "say " WORD\nWORD: /[a-z"]+/'))
TOOLS = (WEATHER, NOTE, ORDER, SAY)
TEXT = (
    "Sure.\n<tool_call>\n"
    '{"name": "note"}\nline one\nline "two" </tool\n</tool_call>\n'
    '<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(TEXT)])
def test_parser_reads_raw_input_whatever_the_chunking(size: int) -> None:
    parser = ToolCallParser(frozenset({"note", "order", "say"}))
    events = []
    for start in range(0, len(TEXT), size):
        events += parser.feed(TEXT[start : start + size])
    events += parser.finish()
    note = ToolCall(parser.calls[0].id, "note", 'line one\nline "two" </tool', custom=True)
    assert parser.calls[0] == note
    assert (parser.calls[1].name, parser.calls[1].custom) == ("weather", False)
    pieces = [e.delta for e in events if isinstance(e, CallArguments) and e.index == 0]
    assert "".join(pieces) == note.arguments
    assert [e.call for e in events if isinstance(e, CallDone)] == parser.calls
    assert "".join(e.text for e in events if isinstance(e, TextPiece)) == "Sure."


def test_a_name_alone_is_raw_input_only_for_custom_tools() -> None:
    parser = ToolCallParser()
    parser.feed('<tool_call>\n{"name": "weather"}\n</tool_call>')
    parser.finish()
    assert parser.calls[0].arguments == "{}" and not parser.calls[0].custom


def test_past_custom_calls_are_spelled_as_the_model_writes_them() -> None:
    call = ToolCall("c1", "order", "ORD-12/ab", custom=True)
    parser = ToolCallParser(frozenset({"order"}))
    parser.feed(call_markup(call))
    parser.finish()
    assert parser.calls[0].arguments == "ORD-12/ab"


def _accepts(forced: bool, text: str) -> bool:
    constraint = tool_call_grammar(TOOLS, ["p"] * len(TOOLS), forced=forced, parallel=True)
    tokenizer = LLTokenizer("byte")
    matcher = LLMatcher(tokenizer, constraint.grammar)
    if not forced:
        text = text.removeprefix("<tool_call>")  # the lazy grammar starts after its trigger
    return bool(matcher.consume_tokens(tokenizer.tokenize_str(text)) and matcher.is_accepting())


@pytest.mark.parametrize("forced", [True, False])
@pytest.mark.parametrize(
    ("call", "valid"),
    [
        ('{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>', True),
        ('{"name": "note"}\nanything "at" all}\n</tool_call>', True),
        ('{"name": "order"}\nORD-12/ab\n</tool_call>', True),
        ('{"name": "order"}\nORD-1/ab\n</tool_call>', False),
        ('{"name": "say"}\nsay h"i\n</tool_call>', True),
        ('{"name": "say"}\nshout hi\n</tool_call>', False),
        ('{"name": "note", "arguments": {}}\n</tool_call>', False),
    ],
)
def test_the_call_grammar_holds_each_input_to_its_format(
    forced: bool, call: str, valid: bool
) -> None:
    assert _accepts(forced, "<tool_call>\n" + call) is valid
