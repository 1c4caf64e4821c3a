"""The function-tool loop over Responses: calls out, results back by previous_response_id."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai import OpenAI

from tests.responses_helpers import MODEL, check_order, sse_events

pytestmark = pytest.mark.slow


def _city_tool(name: str, description: str) -> dict[str, object]:
    return {
        "type": "function",
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }


WEATHER = _city_tool("get_weather", "Current weather for a city.")
TIME = _city_tool("get_time", "The current time in a city.")


def test_function_call_then_result(client: OpenAI) -> None:
    first = client.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
        max_output_tokens=64,
    )
    assert first.status == "completed", first.incomplete_details
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls, first.output
    call = calls[0]
    assert call.name == "get_weather" and call.call_id and call.id
    assert isinstance(json.loads(call.arguments)["city"], str)
    assert first.tools[0].type == "function" and first.tools[0].name == "get_weather"
    assert first.tool_choice == "required"

    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 18}'}
        ],
        tools=[WEATHER],
        tool_choice="none",
        temperature=0,
        max_output_tokens=32,
    )
    assert second.output[0].type == "message"
    items = client.responses.input_items.list(second.id, order="asc").data
    kinds = [item.type for item in items]
    assert kinds[0] == "message" and kinds[-1] == "function_call_output"
    assert "function_call" in kinds
    assert items[-1].call_id == call.call_id


def test_named_tool_choice_and_stream_events(http: httpx.Client) -> None:
    response = http.post(
        "/v1/responses",
        json={
            "model": MODEL,
            "input": "Weather in Oslo?",
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "stream": True,
            "temperature": 0,
            "max_output_tokens": 64,
        },
    )
    events = sse_events(response)
    check_order(events)
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert added[-1]["item"]["type"] == "function_call"
    item_id = added[-1]["item"]["id"]
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert deltas and all(e["item_id"] == item_id for e in deltas)
    assert "".join(e["delta"] for e in deltas) == done["arguments"]
    assert done["name"] == "get_weather"
    json.loads(done["arguments"])
    final_item = events[-1]["response"]["output"][-1]
    assert final_item["call_id"] == added[-1]["item"]["call_id"]


def test_sdk_stream_helper_with_tools(client: OpenAI) -> None:
    with client.responses.stream(
        model=MODEL,
        input="Weather in Rome?",
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
        max_output_tokens=64,
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert any(item.type == "function_call" for item in final.output)


def test_stateless_loop_with_full_history(client: OpenAI) -> None:
    history: list[dict[str, object]] = [{"role": "user", "content": "Weather in Lima?"}]
    first = client.responses.create(
        model=MODEL,
        input=history,  # type: ignore[arg-type]
        tools=[WEATHER],
        tool_choice="required",
        store=False,
        temperature=0,
        max_output_tokens=64,
    )
    call = next(item for item in first.output if item.type == "function_call")
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
    second = client.responses.create(
        model=MODEL,
        input=history,  # type: ignore[arg-type]
        tools=[WEATHER],
        tool_choice="none",
        store=False,
        temperature=0,
        max_output_tokens=24,
    )
    assert second.output[0].type == "message"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(
            model=MODEL,
            previous_response_id=client.responses.create(
                model=MODEL, input="hi", max_output_tokens=16
            ).id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "x"}],
        )
    assert err.value.param == "input[0].call_id"


def test_allowed_tools_narrow_the_call_and_are_echoed(client: OpenAI) -> None:
    choice = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "get_time"}],
    }
    response = client.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",  # the question asks for the other tool
        tools=[WEATHER, TIME],
        tool_choice=choice,  # type: ignore[arg-type]
        temperature=0,
        max_output_tokens=64,
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert [call.name for call in calls] == ["get_time"]
    assert response.tool_choice.type == "allowed_tools"  # type: ignore[union-attr]
    assert [t.name for t in response.tools] == ["get_weather", "get_time"]  # type: ignore[union-attr]


def test_allowed_tools_naming_an_unknown_tool_is_400(http: httpx.Client) -> None:
    body = {
        "model": MODEL,
        "input": "hi",
        "tools": [WEATHER],
        "tool_choice": {
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": "nope"}],
        },
    }
    response = http.post("/v1/responses", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tool_choice"
