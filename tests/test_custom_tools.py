"""Custom tools (``type: "custom"``): free-form input, constrained by a Lark or regex
grammar, in Responses and Chat Completions, on the real default model, with a forced
``tool_choice`` so the tiny model calls them.

The grammar is enforced by the decoder, so every input must be in the grammar's language
(checked here with Python's ``re`` on languages small enough to spell as a regex).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.responses_helpers import MODEL, check_order, sse_events

pytestmark = pytest.mark.slow

ORDER_RE = r"^ORD-[0-9]{4}$"
ORDER_TOOL: dict[str, Any] = {
    "type": "custom",
    "name": "lookup_order",
    "description": "Look up an order by its id.",
    "format": {"type": "grammar", "syntax": "regex", "definition": ORDER_RE},
}
SQL_LARK = """start: "SELECT " column " FROM " table
column: "name" | "age" | "*"
table: "users" | "orders"
"""
SQL_LANGUAGE = re.compile(r"SELECT (name|age|\*) FROM (users|orders)")
SQL_TOOL: dict[str, Any] = {
    "type": "custom",
    "name": "run_sql",
    "description": "Run one SQL query on the shop's database.",
    "format": {"type": "grammar", "syntax": "lark", "definition": SQL_LARK},
}
TEXT_TOOL: dict[str, Any] = {
    "type": "custom",
    "name": "note",
    "description": "Write a short note.",
    "format": {"type": "text"},
}


def _chat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A Responses custom tool as Chat spells it (the grammar nested under ``grammar``)."""
    fmt = tool["format"]
    if fmt["type"] == "grammar":
        fmt = {"type": "grammar", "grammar": {k: fmt[k] for k in ("syntax", "definition")}}
    body = {"name": tool["name"], "description": tool["description"], "format": fmt}
    return {"type": "custom", "custom": body}


# --- Responses ---------------------------------------------------------------------------


def test_regex_tool_call_then_output_by_previous_response(client: OpenAI) -> None:
    first = client.responses.create(
        model=MODEL,
        input="Where is my order?",
        tools=[ORDER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "custom", "name": "lookup_order"},
        temperature=0,
        max_output_tokens=40,
    )
    calls = [item for item in first.output if item.type == "custom_tool_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "lookup_order"
    assert re.fullmatch(ORDER_RE, call.input), call.input
    assert first.tool_choice.type == "custom"  # type: ignore[union-attr]
    echoed = first.tools[0]
    assert echoed.type == "custom" and echoed.format is not None
    assert echoed.format.type == "grammar" and echoed.format.definition == ORDER_RE  # type: ignore[union-attr]

    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Shipped."}],
        tools=[ORDER_TOOL],  # type: ignore[list-item]
        tool_choice="none",
        temperature=0,
        max_output_tokens=16,
    )
    assert second.status in {"completed", "incomplete"}
    assert second.output[-1].type == "message"
    kinds = [item.type for item in client.responses.input_items.list(second.id, order="asc")]
    assert kinds[-2:] == ["custom_tool_call", "custom_tool_call_output"]


def test_lark_tool_streams_its_input_through_the_sdk_helper(client: OpenAI) -> None:
    with client.responses.stream(
        model=MODEL,
        input="How many users are there?",
        tools=[SQL_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "custom", "name": "run_sql"},
        temperature=0,
        max_output_tokens=40,
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.custom_tool_call_input.delta"]
    done = [e for e in events if e.type == "response.custom_tool_call_input.done"]
    assert deltas and len(done) == 1
    call = next(item for item in final.output if item.type == "custom_tool_call")
    assert "".join(deltas) == done[0].input == call.input
    assert done[0].item_id == call.id
    assert SQL_LANGUAGE.fullmatch(call.input), call.input


def test_text_tool_stream_follows_the_event_rules(http: httpx.Client) -> None:
    response = http.post(
        "/v1/responses",
        json={
            "model": MODEL,
            "input": "Remember that I like tea.",
            "tools": [TEXT_TOOL, ORDER_TOOL],
            "tool_choice": {"type": "custom", "name": "note"},
            "stream": True,
            "temperature": 0,
            "max_output_tokens": 24,
        },
    )
    assert response.status_code == 200
    events = sse_events(response)
    check_order(events)
    added = [e for e in events if e["type"] == "response.output_item.added"]
    item = added[-1]["item"]
    assert item["type"] == "custom_tool_call" and item["name"] == "note"
    assert item["input"] == ""
    deltas = [e for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert all(e["item_id"] == item["id"] for e in deltas)
    done = next(e for e in events if e["type"] == "response.custom_tool_call_input.done")
    assert "".join(e["delta"] for e in deltas) == done["input"]
    assert "</tool_call>" not in done["input"]
    assert events[-1]["response"]["output"][-1]["input"] == done["input"]


def test_stored_custom_items_replay_statelessly(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": "Where is my order?"},
            {
                "type": "custom_tool_call",
                "call_id": "call_1",
                "name": "lookup_order",
                "input": "ORD-1234",
            },
            {"type": "custom_tool_call_output", "call_id": "call_1", "output": "Shipped."},
        ],
        tools=[ORDER_TOOL],  # type: ignore[list-item]
        tool_choice="none",
        temperature=0,
        max_output_tokens=16,
    )
    assert response.output[-1].type == "message"
    items = client.responses.input_items.list(response.id, order="asc").data
    stored = next(item for item in items if item.type == "custom_tool_call")
    assert stored.input == "ORD-1234"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fmt", "param"),
    [
        ({"type": "grammar", "syntax": "lark", "definition": "start: missing"}, "definition"),
        ({"type": "grammar", "syntax": "lark", "definition": 'start: "a'}, "definition"),
        ({"type": "grammar", "syntax": "regex", "definition": "(unclosed"}, "definition"),
        ({"type": "grammar", "syntax": "regex", "definition": ""}, "definition"),
        ({"type": "grammar", "syntax": "ebnf", "definition": "x"}, "syntax"),
        ({"type": "grammar", "syntax": "lark"}, "definition"),
        ({"type": "json"}, "type"),
    ],
)
def test_bad_format_is_a_400_naming_the_field(
    http: httpx.Client, fmt: dict[str, Any], param: str
) -> None:
    tool = {"type": "custom", "name": "t", "format": fmt}
    body = {"model": MODEL, "input": "x", "tools": [tool], "max_output_tokens": 1}
    response = http.post("/v1/responses", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == f"tools[0].format.{param}"


def test_bad_choice_and_unanswered_output_are_400s(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as choice:
        client.responses.create(
            model=MODEL,
            input="x",
            tools=[ORDER_TOOL],  # type: ignore[list-item]
            tool_choice={"type": "custom", "name": "nope"},
        )
    assert choice.value.body["param"] == "tool_choice.name"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as output:
        client.responses.create(
            model=MODEL,
            input=[{"type": "custom_tool_call_output", "call_id": "call_x", "output": "hi"}],
        )
    assert output.value.body["param"] == "input[0].call_id"  # type: ignore[index]


# --- Chat Completions --------------------------------------------------------------------


def test_chat_custom_call_and_its_result(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Where is my order?"}],
        tools=[_chat_tool(ORDER_TOOL)],  # type: ignore[list-item]
        tool_choice={"type": "custom", "custom": {"name": "lookup_order"}},
        temperature=0,
        max_tokens=40,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"  # a named tool_choice, as OpenAI answers it
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "custom"
    assert calls[0].custom.name == "lookup_order"
    assert re.fullmatch(ORDER_RE, calls[0].custom.input), calls[0].custom.input

    answer = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "Where is my order?"},
            {"role": "assistant", "tool_calls": [calls[0].model_dump()]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": calls[0].id, "content": "Shipped."},
        ],
        tools=[_chat_tool(ORDER_TOOL)],  # type: ignore[list-item]
        tool_choice="none",
        temperature=0,
        max_tokens=16,
    )
    assert answer.choices[0].message.content


def test_chat_custom_call_streams_its_input(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "How many users are there?"}],
        tools=[_chat_tool(SQL_TOOL), _chat_tool(ORDER_TOOL)],  # type: ignore[list-item]
        tool_choice={"type": "custom", "custom": {"name": "run_sql"}},
        temperature=0,
        max_tokens=40,
        stream=True,
    )
    pieces: list[str] = []
    starts: list[dict[str, Any]] = []
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            custom: dict[str, Any] = getattr(call, "custom", None) or {}
            assert call.function is None
            if call.id is not None:
                starts.append(custom)
            pieces.append(custom.get("input", ""))
    assert [s["name"] for s in starts] == ["run_sql"]
    assert SQL_LANGUAGE.fullmatch("".join(pieces)), pieces


def test_chat_bad_grammar_is_a_400_naming_it(http: httpx.Client) -> None:
    tool = _chat_tool({**SQL_TOOL, "format": {**SQL_TOOL["format"], "definition": "start: x"}})
    response = http.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "tools": [tool]},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "tools[0].custom.format.grammar.definition"
