"""The stream-event builder on event sequences the packaged models never produce
(reasoning, reasoning then a tool call, a call cut off by the token budget), checked
with the ordering rules and with the SDK's own stream accumulator."""

from __future__ import annotations

import json
from typing import Any

from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState

from oasis.core.conversation import ToolCall
from oasis.core.events import (
    Finished,
    GenerationEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallDone,
    ToolCallStarted,
)
from oasis.responses.events import ResponseBuilder
from tests.responses_helpers import check_order

BASE: dict[str, Any] = {
    "id": "resp_test",
    "object": "response",
    "created_at": 0,
    "status": "in_progress",
    "model": "m",
    "instructions": None,
    "metadata": {},
    "temperature": 1.0,
    "top_p": 1.0,
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
}


def run(events: list[GenerationEvent]) -> tuple[ResponseBuilder, list[dict[str, Any]]]:
    builder = ResponseBuilder(dict(BASE))
    out = builder.created() + builder.in_progress()
    for event in events:
        out += builder.finish(event) if isinstance(event, Finished) else builder.feed(event)
    payloads = [json.loads(e.model_dump_json(exclude_unset=True, by_alias=True)) for e in out]
    check_order(payloads)
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in out:
        state.handle_event(event)
    return builder, payloads


def test_reasoning_then_text() -> None:
    builder, events = run(
        [
            ReasoningDelta("Think"),
            ReasoningDelta("ing."),
            TextDelta("Hello"),
            TextDelta(" there"),
            Finished("stop", "Hello there", 5, 7, reasoning="Thinking."),
        ]
    )
    kinds = [e["type"] for e in events]
    assert kinds[2:9] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    final = builder.response()
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == "Thinking."
    assert final.output_text == "Hello there"


def test_reasoning_then_tool_calls() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}')
    other = ToolCall(id="call_2", name="get_time", arguments="{}")
    builder, events = run(
        [
            ReasoningDelta("Need a tool."),
            ToolCallStarted(0, "call_1", "get_weather"),
            ToolCallArgumentsDelta(0, '{"city":'),
            ToolCallArgumentsDelta(0, '"Paris"}'),
            ToolCallDone(0, call),
            ToolCallStarted(1, "call_2", "get_time"),
            ToolCallArgumentsDelta(1, "{}"),
            ToolCallDone(1, other),
            Finished("tool_calls", "", 5, 9, tool_calls=(call, other)),
        ]
    )
    final = builder.response()
    assert [item.type for item in final.output] == ["reasoning", "function_call", "function_call"]
    assert [item.call_id for item in final.output[1:]] == ["call_1", "call_2"]
    assert events[-1]["type"] == "response.completed"


def test_calls_only_reported_at_the_end_still_stream() -> None:
    call = ToolCall(id="call_9", name="f", arguments="{}")
    builder, events = run([Finished("tool_calls", "", 3, 4, tool_calls=(call,))])
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.done" in kinds
    assert builder.response().output[0].type == "function_call"


def test_budget_cuts_a_call_short() -> None:
    builder, events = run(
        [
            ToolCallStarted(0, "call_1", "f"),
            ToolCallArgumentsDelta(0, '{"a":'),
            Finished("length", "", 3, 16),
        ]
    )
    final = builder.response()
    assert final.status == "incomplete"
    assert final.output[0].status == "incomplete"
    assert events[-1]["type"] == "response.incomplete"


def test_empty_generation_still_has_a_message() -> None:
    builder, _ = run([Finished("stop", "", 3, 0)])
    assert builder.response().output_text == ""
    assert builder.response().output[0].type == "message"


def test_events_validate_as_the_sdk_union_reads_them() -> None:
    # The builder picks each event's (and item's) type by its "type" field; the SDK's own
    # union, tried member by member, must read every event the same way.
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    from oasis.tools.base import ItemAdded, ItemDone, ItemProgress

    sdk_union: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    builder = ResponseBuilder(dict(BASE))
    out = builder.created() + builder.in_progress()
    out += builder.feed(ReasoningDelta("Think."))
    call: dict[str, Any] = {
        "type": "mcp_call",
        "id": "mcp_1",
        "server_label": "bench",
        "name": "add",
        "arguments": "",
        "status": "in_progress",
        "approval_request_id": None,
        "output": None,
        "error": None,
    }
    out += builder.hosted(ItemAdded(call))
    out += builder.hosted(ItemProgress("response.mcp_call.in_progress"))
    out += builder.hosted(ItemProgress("response.mcp_call_arguments.delta", {"delta": "{}"}))
    out += builder.hosted(ItemProgress("response.mcp_call.completed", item_status="completed"))
    out += builder.hosted(
        ItemDone({**call, "arguments": "{}", "status": "completed", "output": "5"})
    )
    out += builder.feed(ToolCallStarted(0, "call_1", "f"))
    out += builder.feed(ToolCallArgumentsDelta(0, '{"a": 1}'))
    out += builder.feed(TextDelta("Hello"))
    out += builder.finish(
        Finished("stop", "Hello", 5, 7, tool_calls=(ToolCall("call_1", "f", '{"a": 1}'),))
    )
    assert {"mcp_call", "reasoning", "function_call", "message"} <= {
        e.item.type for e in out if e.type == "response.output_item.done"
    }
    for event in out:
        wire = event.model_dump_json(exclude_unset=True, by_alias=True)
        again = sdk_union.validate_json(wire)
        assert type(again) is type(event)
        assert again.model_dump_json(exclude_unset=True, by_alias=True) == wire
        if hasattr(event, "item"):
            assert type(again.item) is type(event.item)
