"""The agent loop, driven by a test tool plugin registered through ``tool_plugins``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.responses_helpers import MODEL, check_order, sse_events
from tests.server import Server, sdk_for, start_server

ROOT = Path(__file__).resolve().parent.parent
SEARCH = {"tools": [{"type": "web_search_preview"}], "tool_choice": {"type": "web_search_preview"}}


@pytest.fixture(scope="module")
def loop_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    srv = start_server(
        tmp_path_factory.mktemp("oasis-loop"),
        config={"preload": [MODEL], "tool_plugins": ["tests.tool_plugin"]},
        env={"PYTHONPATH": path},
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def sdk(loop_server: Server) -> Iterator[OpenAI]:
    with sdk_for(loop_server, "sk-test") as client:
        yield client


def _create(sdk: OpenAI, **body: Any) -> Any:
    return sdk.responses.create(
        model=MODEL, input="What is the capital of France?", temperature=0, **body
    )


def test_a_hosted_call_runs_is_streamed_stored_and_fed_back(sdk: OpenAI) -> None:
    with sdk.responses.stream(
        model=MODEL,
        input="What is the capital of France?",
        temperature=0,
        max_tool_calls=1,
        max_output_tokens=200,
        **SEARCH,  # type: ignore[arg-type]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    progress = [k for k in kinds if k.startswith("response.web_search_call.")]
    assert progress == [
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
    ]
    assert final.output[0].type == "web_search_call"
    assert final.output[0].status == "completed"
    # The budget of one hosted call is spent, so the model answered: a message last.
    assert [item.type for item in final.output].count("web_search_call") == 1
    assert final.output[-1].type == "message"
    assert kinds[-1] == "response.completed"
    stored = sdk.responses.retrieve(final.id)
    assert stored.output[0] == final.output[0]  # the hosted item, stored as streamed
    assert [i.id for i in stored.output] == [i.id for i in final.output]
    # The model was called again, with the call and its result: the response's input
    # tokens add up both steps' prompts.
    first = sdk.responses.input_tokens.count(
        model=MODEL,
        input="What is the capital of France?",
        **SEARCH,  # type: ignore[arg-type]
    )
    assert final.usage is not None
    assert final.usage.input_tokens > first.input_tokens


def test_max_tool_calls_zero_runs_no_hosted_call(sdk: OpenAI) -> None:
    response = _create(sdk, max_tool_calls=0, max_output_tokens=16, **SEARCH)
    assert [item.type for item in response.output] == ["message"]


def test_a_tool_that_raises_fails_the_response_not_the_connection(sdk: OpenAI) -> None:
    with sdk.responses.stream(
        model=MODEL,
        input="Compute 2+2 in Python.",
        temperature=0,
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        tool_choice={"type": "code_interpreter"},
    ) as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.error is not None and failed.error.code == "server_error"
    assert "crashed" not in failed.error.message  # a tool's own bug stays in the log
    stored = sdk.responses.retrieve(failed.id)
    assert stored.status == "failed"
    assert stored.output[0].type == "code_interpreter_call"


def test_the_loop_stream_keeps_numbering_and_pairing(loop_server: Server) -> None:
    body = {
        "model": MODEL,
        "input": "What is the capital of France?",
        "temperature": 0,
        "max_tool_calls": 1,
        "stream": True,
        **SEARCH,
    }
    response = httpx.post(f"{loop_server.api_url}/responses", json=body, timeout=300)
    events = sse_events(response)
    check_order(events)
    hosted = [e for e in events if e["type"].startswith("response.web_search_call.")]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert {(e["item_id"], e["output_index"]) for e in hosted} == {(added["item"]["id"], 0)}


def test_a_hosted_item_is_kept_in_the_chain(sdk: OpenAI) -> None:
    first = _create(sdk, max_tool_calls=1, max_output_tokens=200, **SEARCH)
    assert first.output[0].type == "web_search_call"
    second = sdk.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input="Thanks.",
        temperature=0,
        max_output_tokens=8,
    )
    items = sdk.responses.input_items.list(second.id, order="asc")
    kinds = [item.type for item in items]
    assert "web_search_call" in kinds
    assert [i.id for i in items if i.type == "web_search_call"] == [first.output[0].id]


def _input_tokens(loop_server: Server, **body: Any) -> int:
    reply = httpx.post(
        f"{loop_server.api_url}/responses/input_tokens",
        json={"model": MODEL, **body},
        headers={"Authorization": "Bearer sk-test"},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    return int(reply.json()["input_tokens"])


QUESTION = {"role": "user", "content": "What is the capital of France?"}
SEARCHED = {
    "type": "web_search_call",
    "id": "ws_given",
    "status": "completed",
    "action": {
        "type": "search",
        "query": "capital of France",
        "sources": [{"type": "url", "url": "https://example.org/france"}],
    },
}


def test_a_stored_hosted_item_is_shown_to_the_model_on_the_next_turn(
    sdk: OpenAI, loop_server: Server
) -> None:
    first = _create(sdk, max_tool_calls=1, max_output_tokens=200, **SEARCH)
    assert first.output[0].type == "web_search_call"
    chained = _input_tokens(loop_server, previous_response_id=first.id, input="Thanks.")
    # The same context without the search: the model would not know it had searched.
    without = [
        {"role": "user", "content": "What is the capital of France?"},
        *[item.model_dump() for item in first.output if item.type != "web_search_call"],
        {"role": "user", "content": "Thanks."},
    ]
    assert chained > _input_tokens(loop_server, input=without)


def test_a_client_sent_hosted_item_is_stored_listed_and_replayed(
    sdk: OpenAI, loop_server: Server
) -> None:
    with_search = _input_tokens(loop_server, input=[QUESTION, SEARCHED])
    assert with_search > _input_tokens(loop_server, input=[QUESTION])
    response = sdk.responses.create(
        model=MODEL,
        input=[QUESTION, SEARCHED],
        temperature=0,
        max_output_tokens=4,  # type: ignore[list-item]
    )
    listed = [i for i in sdk.responses.input_items.list(response.id) if i.type == "web_search_call"]
    assert [i.id for i in listed] == ["ws_given"]
    # Sources are stored, and shown only when ``include`` asks for them.
    assert listed[0].action.sources is None  # type: ignore[union-attr]
    shown = sdk.responses.input_items.list(response.id, include=["web_search_call.action.sources"])
    search = next(i for i in shown if i.type == "web_search_call")
    assert [s.url for s in search.action.sources or []] == ["https://example.org/france"]  # type: ignore[union-attr]


def test_a_hosted_item_of_the_sdk_types_is_checked_and_an_unknown_type_refused(
    loop_server: Server,
) -> None:
    url = f"{loop_server.api_url}/responses"
    headers = {"Authorization": "Bearer sk-test"}
    bad = {**SEARCHED, "action": {"type": "search", "sources": "nope"}}
    reply = httpx.post(url, json={"model": MODEL, "input": [bad]}, headers=headers, timeout=60)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"].startswith("input[0].action")
    unknown = {"type": "teleport_call", "id": "x"}
    reply = httpx.post(url, json={"model": MODEL, "input": [unknown]}, headers=headers, timeout=60)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == "input[0].type"
