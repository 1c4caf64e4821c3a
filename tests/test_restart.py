"""Durability and ownership: a restart (or a crash) loses nothing that was stored, and
every stored object belongs to the API key that made it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.responses_helpers import MODEL, SHORT, sse_events
from tests.server import Server, start_server

pytestmark = pytest.mark.slow

KEYS = ("sk-owner-a", "sk-owner-b")
CONFIG = {"preload": [MODEL]}


def _client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=300
    )


def _start(data_dir: Path) -> Server:
    # OASIS_TEST_DATABASE_URL=postgresql://… runs these tests on PostgreSQL instead.
    url = os.environ.get("OASIS_TEST_DATABASE_URL")
    return start_server(
        data_dir,
        config=CONFIG,
        env={"OASIS_API_KEYS": ",".join(KEYS)},
        args=["--database-url", url] if url else [],
    )


def _wait(api: httpx.Client, response_id: str, statuses: set[str]) -> dict[str, object]:
    deadline = time.monotonic() + 240
    while True:
        body = api.get(f"/responses/{response_id}").json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


def test_state_survives_a_restart_and_is_per_key(data_dir: Path) -> None:
    server = _start(data_dir)
    try:
        with _client(server, KEYS[0]) as a, _client(server, KEYS[1]) as b:
            stored = a.post(
                "/responses", json={"model": MODEL, "max_output_tokens": 24, **SHORT}
            ).json()
            chained = a.post(
                "/responses",
                json={
                    "model": MODEL,
                    "input": "Thanks",
                    "previous_response_id": stored["id"],
                    "max_output_tokens": 16,
                },
            ).json()
            conversation = a.post(
                "/conversations",
                json={"metadata": {"k": "v"}, "items": [{"role": "user", "content": "Hi"}]},
            ).json()
            a.post(
                "/responses",
                json={
                    "model": MODEL,
                    "conversation": conversation["id"],
                    "input": "Hello",
                    "max_output_tokens": 16,
                },
            ).raise_for_status()
            background = sse_events(
                a.post(
                    "/responses",
                    json={
                        "model": MODEL,
                        "background": True,
                        "stream": True,
                        "max_output_tokens": 24,
                        **SHORT,
                    },
                )
            )
            background_id = background[0]["response"]["id"]
            before = {
                "stored": a.get(f"/responses/{stored['id']}").json(),
                "chained": a.get(f"/responses/{chained['id']}").json(),
                "input_items": a.get(f"/responses/{chained['id']}/input_items").json(),
                "conversation": a.get(f"/conversations/{conversation['id']}").json(),
                "conv_items": a.get(f"/conversations/{conversation['id']}/items").json(),
                "background": _wait(a, background_id, {"completed", "incomplete", "failed"}),
            }
            assert before["background"]["status"] == "completed"

            # Another key sees none of it.
            for path in (
                f"/responses/{stored['id']}",
                f"/responses/{stored['id']}/input_items",
                f"/conversations/{conversation['id']}",
                f"/conversations/{conversation['id']}/items",
            ):
                assert b.get(path).status_code == 404, path
            assert b.delete(f"/responses/{stored['id']}").status_code == 404
            assert b.post(f"/responses/{background_id}/cancel").status_code == 404
            refused = b.post(
                "/responses",
                json={"model": MODEL, "input": "x", "previous_response_id": stored["id"]},
            )
            assert refused.status_code == 400
            assert refused.json()["error"]["code"] == "previous_response_not_found"
            assert (
                b.post(
                    "/responses",
                    json={"model": MODEL, "input": "x", "conversation": conversation["id"]},
                ).status_code
                == 404
            )
    finally:
        server.stop()

    server = _start(data_dir)
    try:
        with _client(server, KEYS[0]) as a:
            after = {
                "stored": a.get(f"/responses/{stored['id']}").json(),
                "chained": a.get(f"/responses/{chained['id']}").json(),
                "input_items": a.get(f"/responses/{chained['id']}/input_items").json(),
                "conversation": a.get(f"/conversations/{conversation['id']}").json(),
                "conv_items": a.get(f"/conversations/{conversation['id']}/items").json(),
                "background": a.get(f"/responses/{background_id}").json(),
            }
            assert after == before
            replay = sse_events(a.get(f"/responses/{background_id}", params={"stream": "true"}))
            assert replay == background
            # Chaining goes on from before the restart.
            more = a.post(
                "/responses",
                json={
                    "model": MODEL,
                    "input": "Once more",
                    "previous_response_id": chained["id"],
                    "max_output_tokens": 16,
                },
            )
            assert more.status_code == 200
    finally:
        server.stop()


def test_a_job_running_at_a_crash_is_failed_on_restart(data_dir: Path) -> None:
    server = _start(data_dir)
    try:
        with _client(server, KEYS[0]) as a:
            with a.stream(
                "POST",
                "/responses",
                json={
                    "model": MODEL,
                    "input": "Write a very long story about the sea.",
                    "background": True,
                    "stream": True,
                    "max_output_tokens": 4000,
                    # Greedy writes on for thousands of tokens: still running at the kill,
                    # where a sampled story could end first.
                    "temperature": 0,
                },
            ) as stream:
                lines = stream.iter_lines()
                next(lines)
                response_id = next(lines).split('"id":"', 1)[1].split('"', 1)[0]
            running = _wait(a, response_id, {"in_progress", "completed", "incomplete"})
            assert running["status"] == "in_progress"
    finally:
        server.kill()

    server = _start(data_dir)
    try:
        with _client(server, KEYS[0]) as a:
            body = a.get(f"/responses/{response_id}").json()
            assert body["status"] == "failed"
            assert body["error"]["code"] == "server_error"
            events = sse_events(a.get(f"/responses/{response_id}", params={"stream": "true"}))
            assert events[0]["type"] == "response.created"
            assert events[-1]["type"] == "response.failed"
            assert [e["sequence_number"] for e in events] == list(range(len(events)))
    finally:
        server.stop()


def test_cancel_racing_a_shutdown_ends_every_job(data_dir: Path) -> None:
    """Cancels that meet a shutdown leave every job ended (cancelled or failed) on disk."""
    if os.environ.get("OASIS_TEST_DATABASE_URL"):
        pytest.skip("reads the SQLite file directly")
    server = _start(data_dir)
    ids: list[str] = []
    try:
        with _client(server, KEYS[0]) as a:
            for _ in range(3):
                started = a.post(
                    "/responses",
                    json={
                        "model": MODEL,
                        "input": "Write a very long story about the sea.",
                        "background": True,
                        "max_output_tokens": 4000,
                        "temperature": 0,
                    },
                ).json()
                ids.append(started["id"])
            for response_id in ids:
                assert _wait(a, response_id, {"in_progress"})["status"] == "in_progress"

            def cancel(response_id: str) -> None:
                with contextlib.suppress(httpx.HTTPError):  # the server may be gone first
                    a.post(f"/responses/{response_id}/cancel")

            with ThreadPoolExecutor(len(ids) + 1) as pool:
                for response_id in ids:
                    pool.submit(cancel, response_id)
                pool.submit(server.stop)
    finally:
        server.stop()
    with sqlite3.connect(data_dir / "oasis.db") as db:
        rows = db.execute(
            f"SELECT status FROM responses WHERE id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
    assert len(rows) == len(ids)
    assert {status for (status,) in rows} <= {"cancelled", "failed"}
