"""Streamed responses: the raw SSE sequence and the SDK's stream helper."""

from __future__ import annotations

import time

import httpx
import pytest
from openai import OpenAI

from tests.logprob_helpers import spelled
from tests.responses_helpers import MODEL, SHORT, check_order, sse_events
from tests.server import Server

pytestmark = pytest.mark.slow


def test_raw_sse_plain_text_order(http: httpx.Client) -> None:
    response = http.post(
        "/v1/responses",
        json={"model": MODEL, "stream": True, "max_output_tokens": 32, **SHORT},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in response.text
    events = sse_events(response)
    check_order(events)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == [] and events[0]["response"]["usage"] is None
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert deltas and all(e["logprobs"] == [] for e in deltas)
    tail = kinds[-4:]
    assert tail[:3] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    text = "".join(e["delta"] for e in deltas)
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == text
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == text
    assert final["usage"]["output_tokens"] > 0
    # The stored response is the final snapshot.
    stored = http.get(f"/v1/responses/{final['id']}").json()
    assert stored["output"] == final["output"] and stored["status"] == final["status"]


def test_raw_sse_incomplete(http: httpx.Client) -> None:
    response = http.post(
        "/v1/responses",
        json={
            "model": MODEL,
            "input": "Write a long poem about rivers.",
            "stream": True,
            "max_output_tokens": 16,
            "temperature": 0,  # greedy runs past 16 tokens; a sampled poem could end first
        },
    )
    events = sse_events(response)
    check_order(events)
    assert events[-1]["type"] == "response.incomplete"
    final = events[-1]["response"]
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    item_done = [e for e in events if e["type"] == "response.output_item.done"]
    assert item_done[-1]["item"]["status"] == "incomplete"


def test_stream_logprobs(http: httpx.Client) -> None:
    response = http.post(
        "/v1/responses",
        json={
            "model": MODEL,
            "input": "Hi",
            "stream": True,
            "max_output_tokens": 16,
            "top_logprobs": 1,
            "include": ["message.output_text.logprobs"],
        },
    )
    events = sse_events(response)
    check_order(events)
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    streamed = [lp for e in deltas for lp in e["logprobs"]]
    part = events[-1]["response"]["output"][0]["content"][0]
    # Delta events carry no bytes; the final part does, and its entries are the streamed ones.
    assert [lp["token"] for lp in part["logprobs"]] == [lp["token"] for lp in streamed]
    assert spelled(lp["bytes"] for lp in part["logprobs"]) == part["text"]
    assert part["text"] == "".join(e["delta"] for e in deltas)


def test_sdk_stream_helper_and_final_response(client: OpenAI) -> None:
    with client.responses.stream(model=MODEL, max_output_tokens=32, **SHORT) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "4" in final.output_text
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_sdk_raw_stream_events_validate(client: OpenAI) -> None:
    events = list(
        client.responses.create(model=MODEL, input="Hello", stream=True, max_output_tokens=16)
    )
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type in {"response.completed", "response.incomplete"}


def test_stream_errors_before_start_are_http_errors(http: httpx.Client) -> None:
    response = http.post(
        "/v1/responses", json={"model": "no-such-model", "input": "x", "stream": True}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_foreground_stream_cannot_be_replayed(http: httpx.Client) -> None:
    response = http.post(
        "/v1/responses",
        json={"model": MODEL, "input": "Hi", "stream": True, "max_output_tokens": 16},
    )
    response_id = sse_events(response)[0]["response"]["id"]
    replay = http.get(f"/v1/responses/{response_id}", params={"stream": "true"})
    assert replay.status_code == 400


def test_a_client_that_hangs_up_stops_the_generation(server: Server) -> None:
    # The stream is read ahead of its writer by a task of its own (in_runs); a client that
    # leaves must still stop the engine job, not leave it generating for nobody.
    endless = {  # the grammar forbids an early end: 1000 numbers take far longer than the read
        "type": "object",
        "properties": {"n": {"type": "array", "items": {"type": "integer"}, "minItems": 1000}},
        "required": ["n"],
    }
    body = {
        "model": MODEL,
        "input": "List numbers.",
        "stream": True,
        "max_output_tokens": 3000,
        "text": {"format": {"type": "json_schema", "name": "numbers", "schema": endless}},
    }
    marker = "generation stopped early"
    before = server.log().count(marker)
    with (
        httpx.Client(base_url=server.base_url, timeout=60) as http,
        http.stream("POST", "/v1/responses", json=body) as response,
    ):
        assert response.status_code == 200
        for i, _ in enumerate(response.iter_lines()):
            if i > 20:
                break
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.log().count(marker) == before:
        time.sleep(0.2)
    stopped = [line for line in server.log().splitlines() if marker in line]
    assert len(stopped) > before, "the server never noticed the client left"
    assert int(stopped[-1].rsplit("after ", 1)[1].split()[0]) < 3000
