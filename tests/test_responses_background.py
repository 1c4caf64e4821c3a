"""Background responses: queued at once, polled, cancelled, and replayed as a stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import httpx
import pytest
from openai import OpenAI
from openai.types.responses import Response

from tests.responses_helpers import MODEL, SHORT, check_order, sse_events

pytestmark = pytest.mark.slow

T = TypeVar("T")

# Greedy SmolLM2 writes on for thousands of tokens here, so the job is surely still running
# when a test cancels it (a sampled story could end first, and then it is "completed").
LONG = {
    "input": "Write a very long story about a lighthouse keeper.",
    "max_output_tokens": 4000,
    "temperature": 0,
}


def wait_for(
    client: OpenAI, response_id: str, statuses: set[str], timeout: float = 240
) -> Response:
    deadline = time.monotonic() + timeout
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in statuses or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_background_is_queued_then_completes(client: OpenAI) -> None:
    queued = client.responses.create(model=MODEL, background=True, max_output_tokens=32, **SHORT)
    assert queued.status == "queued" and queued.background is True
    assert queued.output == [] and queued.usage is None
    final = wait_for(client, queued.id, {"completed", "incomplete", "failed"})
    assert final.status == "completed", final.error
    assert final.output_text and final.usage is not None
    assert final.completed_at is not None
    # Cancelling a finished background response is idempotent: its state comes back.
    again = client.responses.cancel(final.id)
    assert again.status == "completed" and again.output_text == final.output_text


def test_cancel_stops_generation(client: OpenAI) -> None:
    started = client.responses.create(model=MODEL, background=True, **LONG)
    running = wait_for(client, started.id, {"in_progress", "completed", "incomplete"})
    assert running.status == "in_progress"
    cancelled = client.responses.cancel(started.id)
    assert cancelled.status == "cancelled"
    settled = client.responses.retrieve(started.id)
    time.sleep(1.0)
    later = client.responses.retrieve(started.id)
    assert later.status == "cancelled"
    assert later.output == settled.output  # nothing more was generated
    assert client.responses.cancel(started.id).status == "cancelled"


def test_background_stream_and_replay(client: OpenAI, http: httpx.Client) -> None:
    response = http.post(
        "/v1/responses",
        json={"model": MODEL, "background": True, "stream": True, "max_output_tokens": 32, **SHORT},
    )
    events = sse_events(response)
    check_order(events)
    assert [e["type"] for e in events[:3]] == [
        "response.created",
        "response.queued",
        "response.in_progress",
    ]
    assert events[0]["response"]["status"] == "queued"
    assert events[-1]["type"] == "response.completed"
    response_id = events[0]["response"]["id"]

    replay = sse_events(http.get(f"/v1/responses/{response_id}", params={"stream": "true"}))
    assert replay == events
    after = sse_events(
        http.get(f"/v1/responses/{response_id}", params={"stream": "true", "starting_after": 4})
    )
    assert after == events[5:]

    # The SDK helper resumes by replaying everything and filtering on its side.
    with client.responses.stream(response_id=response_id, starting_after=2) as stream:
        seen = [event.sequence_number for event in stream]
        final = stream.get_final_response()
    assert seen == list(range(3, len(events)))
    assert final.output_text == client.responses.retrieve(response_id).output_text


def test_replay_follows_a_running_job(http: httpx.Client, client: OpenAI) -> None:
    with http.stream(
        "POST",
        "/v1/responses",
        json={"model": MODEL, "background": True, "stream": True, **LONG, "max_output_tokens": 48},
    ) as first:
        lines = first.iter_lines()
        head = next(lines)
        assert head == "event: response.created"
        data = next(lines)
        response_id = data.split('"id":"', 1)[1].split('"', 1)[0]
    # The client went away; the job goes on, and a reader can attach to it live.
    live = sse_events(http.get(f"/v1/responses/{response_id}", params={"stream": "true"}))
    check_order(live)
    assert live[-1]["type"] in {"response.completed", "response.incomplete"}
    assert client.responses.retrieve(response_id).status == live[-1]["response"]["status"]


def _together(*calls: Callable[[], T]) -> list[T]:
    """Run the calls at the same moment from separate threads; their results in order."""
    barrier = threading.Barrier(len(calls))

    def call(fn: Callable[[], T]) -> T:
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(call, calls))


def test_racing_cancels_end_cancelled(client: OpenAI) -> None:
    """Two cancels at once: one cancellation, written once, never left ``in_progress``."""
    stuck: list[tuple[str, str]] = []
    for trial in range(50):
        started = client.responses.create(model=MODEL, background=True, **LONG)
        if trial % 2:  # half the time cancel a running job, else one that may not have begun
            wait_for(client, started.id, {"in_progress", "completed", "incomplete"})
        cancel = partial(client.responses.cancel, started.id)
        answers = _together(cancel, cancel)
        final = client.responses.retrieve(started.id)
        if final.status != "cancelled" or any(a.status != "cancelled" for a in answers):
            stuck.append((started.id, final.status))
    assert stuck == []


def test_cancel_racing_delete_ends_the_job(client: OpenAI, http: httpx.Client) -> None:
    for trial in range(10):
        started = client.responses.create(model=MODEL, background=True, **LONG)
        if trial % 2:
            wait_for(client, started.id, {"in_progress", "completed", "incomplete"})
        cancelled, deleted = _together(
            partial(http.post, f"/v1/responses/{started.id}/cancel"),
            partial(http.delete, f"/v1/responses/{started.id}"),
        )
        assert deleted.status_code == 200, deleted.text
        # The cancel answers the cancelled response, or 404 when the delete came first.
        if cancelled.status_code == 200:
            assert cancelled.json()["status"] == "cancelled"
        else:
            assert cancelled.status_code == 404, cancelled.text
        assert http.get(f"/v1/responses/{started.id}").status_code == 404
