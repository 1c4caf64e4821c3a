"""Replicas: several ``oasis serve`` processes on one PostgreSQL behave as one server.

The cluster is started by the tests (:mod:`tests.postgres`). Stored responses chain,
cancel and stream across replicas; a background job whose replica is killed is ended by
another; replicas started together migrate once; rate limits are shared; a replica's
in-memory search index follows vector store changes made through another.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types import Batch
from openai.types.shared_params import ComparisonFilter

from oasis.store.migrations import STEPS
from tests.postgres import Cluster
from tests.responses_helpers import MODEL, SHORT, check_order, sse_events
from tests.server import Server, oasis_cli, sdk_for, start_server

pytestmark = pytest.mark.slow

KEY = "sk-replicas"
SECRET = "replicas-share-this-owner-secret"
# Short leases, so a dead replica's jobs are taken over within seconds.
LEASE_SECONDS = "4"
LONG = {
    "input": "Write a very long story about a lighthouse keeper and the sea.",
    "max_output_tokens": 400,  # longer than any test waits: jobs end by cancel or kill
}


FINAL = {"completed", "incomplete", "failed", "cancelled"}


def _replica(
    data_dir: Path,
    url: str,
    *,
    preload: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Server:
    return start_server(
        data_dir,
        config={"preload": preload},
        env={
            "OASIS_API_KEYS": KEY,
            "OASIS_OWNER_SECRET": SECRET,
            "OASIS_LEASE_SECONDS": LEASE_SECONDS,
            **(env or {}),
        },
        args=["--database-url", url],
        timeout=timeout,
    )


def _start_together(
    count: int, data_dir: Path, url: str, *, shared: bool = False, **kwargs: Any
) -> list[Server]:
    """``count`` replicas at once, each with a data dir of its own under ``data_dir``; or
    all on ``data_dir`` itself when ``shared``, one after another (each writes its config
    file there as it starts)."""
    if shared:
        return [_replica(data_dir, url, **kwargs) for _ in range(count)]
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(_replica, data_dir / f"r{i}", url, **kwargs) for i in range(count)]
        return [f.result() for f in futures]


def _api(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.api_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300
    )


def _wait(api: httpx.Client, response_id: str, statuses: set[str], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = api.get(f"/responses/{response_id}").json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


@dataclass
class Replicas:
    url: str
    servers: list[Server]


@pytest.fixture(scope="module")
def replicas(postgres: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """Three replicas started at once on a new, empty database (they migrate it
    together); models load on first use. The last one is killed by a test."""
    url = postgres.database()
    servers = _start_together(3, tmp_path_factory.mktemp("replicas"), url, preload=[])
    try:
        yield Replicas(url, servers)
    finally:
        for server in servers:
            server.stop()


def _read_events(api: httpx.Client, body: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """POST a streamed request, read ``count`` events, hang up."""
    seen: list[dict[str, Any]] = []
    with api.stream("POST", "/responses", json=body) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[len("data: ") :]))
            if len(seen) >= count:
                break
    return seen


def test_replicas_started_together_on_an_empty_database_migrate_once(
    replicas: Replicas, postgres: Cluster
) -> None:
    versions = postgres.psql(replicas.url, "SELECT version FROM oasis_schema_version")
    assert versions.splitlines() == [str(len(STEPS))]
    for server in replicas.servers:
        ready = httpx.get(f"{server.base_url}/health/ready")
        assert ready.status_code == 200, ready.text
        assert httpx.get(f"{server.base_url}/health/live").json()["status"] == "ok"


def test_rate_limits_hold_across_replicas(replicas: Replicas) -> None:
    data_dir = replicas.servers[0].data_dir
    env = {"OASIS_DATABASE_URL": replicas.url, "OASIS_OWNER_SECRET": SECRET}
    oasis_cli(data_dir, "projects", "create", "limited", env=env)
    key = oasis_cli(data_dir, "keys", "create", "--project", "limited", "--rpm", "5", env=env)
    servers = replicas.servers

    def call(i: int) -> int:
        url = f"{servers[i % len(servers)].api_url}/models"
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.get(url, headers=headers, timeout=60).status_code

    for _attempt in range(2):  # again if a minute turned mid-way (windows are minutes)
        minute = int(time.time() // 60)
        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(call, range(12)))
        if int(time.time() // 60) == minute:
            break
        time.sleep(max(0.0, (minute + 2) * 60 - time.time()) + 0.5)
    # Five a minute for the key, across the three replicas together.
    assert sorted(codes) == [200] * 5 + [429] * 7


def test_a_response_stored_through_one_replica_is_used_through_another(replicas: Replicas) -> None:
    a, b = (sdk_for(s, KEY) for s in replicas.servers[:2])
    first = a.responses.create(model=MODEL, **SHORT, max_output_tokens=8)  # type: ignore[call-overload]
    assert b.responses.retrieve(first.id).output_text == first.output_text
    second = b.responses.create(
        model=MODEL,
        input="And 3+3?",
        previous_response_id=first.id,
        temperature=0,
        max_output_tokens=8,
    )
    # The chain was rebuilt on B from what A stored: A's turn is B's context.
    inputs = [item.model_dump() for item in a.responses.input_items.list(second.id)]
    assert any("2+2" in json.dumps(item) for item in inputs)
    b.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        a.responses.retrieve(first.id)
    assert a.responses.retrieve(second.id).id == second.id


def test_a_cancel_through_another_replica_stops_the_job(replicas: Replicas) -> None:
    with _api(replicas.servers[0]) as a, _api(replicas.servers[1]) as b:
        created = a.post("/responses", json={"model": MODEL, "background": True, **LONG})
        response_id = created.json()["id"]
        assert _wait(a, response_id, {"in_progress"} | FINAL)["status"] == "in_progress"
        time.sleep(0.5)  # let it write some output
        cancelled = b.post(f"/responses/{response_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        # B answers once A's job has recorded its end: the cancel is not just a row edit.
        assert cancelled.json()["status"] == "cancelled"
        body = a.get(f"/responses/{response_id}").json()
        assert body["status"] == "cancelled"
        # The job on A has stopped (it is not running on, unseen), and nothing rewrites
        # the row.
        deadline = time.monotonic() + 3  # (it lets its lease go just after its last write)
        while _background_jobs(replicas.servers[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _background_jobs(replicas.servers[0]) == 0
        time.sleep(1.5)
        assert a.get(f"/responses/{response_id}").json() == body


def _background_jobs(server: Server) -> float:
    """The background responses ``server`` is running, from its /metrics."""
    text = httpx.get(f"{server.base_url}/metrics").text
    for line in text.splitlines():
        if line.startswith('oasis_background_jobs{kind="responses"}'):
            return float(line.split()[-1])
    raise AssertionError("no oasis_background_jobs in /metrics")


def test_a_background_stream_resumes_on_the_other_replica(replicas: Replicas) -> None:
    body = {"model": MODEL, "background": True, "stream": True, **LONG, "max_output_tokens": 96}
    with _api(replicas.servers[0]) as a, _api(replicas.servers[1]) as b:
        seen = _read_events(a, body, 4)  # then hang up while the job goes on
        response_id = seen[0]["response"]["id"]
        after = seen[-1]["sequence_number"]
        assert b.get(f"/responses/{response_id}").json()["status"] == "in_progress"
        resumed = b.get(
            f"/responses/{response_id}", params={"stream": "true", "starting_after": after}
        )
        assert resumed.status_code == 200, resumed.text
        events = sse_events(resumed)
        # Every event after the last one seen, as A produced it, to the end.
        numbers = [e["sequence_number"] for e in events]
        assert numbers == list(range(after + 1, after + 1 + len(events)))
        assert events[-1]["type"] in {"response.completed", "response.incomplete"}
        check_order(sse_events(b.get(f"/responses/{response_id}", params={"stream": "true"})))
        final = events[-1]["response"]
        assert a.get(f"/responses/{response_id}").json()["output"] == final["output"]


def test_a_batch_taken_over_from_a_stalled_replica_holds_each_line_once(
    postgres: Cluster, tmp_path: Path
) -> None:
    """A replica stops (SIGSTOP) past its lease mid-batch; another takes the batch over and
    finishes it; the first then wakes with lines in flight. Its late results are refused
    (the lease's generation fences them): each ``custom_id`` is in the output once and
    ``request_counts`` match the file, then and after."""
    url = postgres.database()
    # (Stopped inside a write, its transaction ends by the server's idle timeout.)
    env = {
        "OASIS_LEASE_SECONDS": "1",
        "OASIS_BATCH_CONCURRENCY": "4",
        "OASIS_IDLE_TRANSACTION_SECONDS": "3",
    }
    # (Loading the model may take minutes on a busy machine.)
    stalled, other = _start_together(
        2, tmp_path, url, preload=["smollm2-135m-instruct"], env=env, timeout=600
    )
    try:
        a, b = sdk_for(stalled, KEY), sdk_for(other, KEY)
        batch = _chat_batch(a, 24, 24)
        if _batch_when(a, batch.id, lambda n: n >= 2).status != "in_progress":
            pytest.skip("the batch ended before the replica could be stopped")
        stalled.process.send_signal(signal.SIGSTOP)
        try:
            stopped_at = _finished(b.batches.retrieve(batch.id))
            # The other replica adopts the batch once the lease runs out, and runs lines.
            _batch_when(b, batch.id, lambda n: n > stopped_at)
        finally:
            stalled.process.send_signal(signal.SIGCONT)
        done = _batch_when(b, batch.id, lambda n: False)
        assert done.status == "completed", done
        assert done.output_file_id is not None and done.error_file_id is None
        text = b.files.content(done.output_file_id).text
        output = [json.loads(line) for line in text.splitlines()]
        assert sorted(line["custom_id"] for line in output) == sorted(f"s{i}" for i in range(24))
        counts = done.request_counts
        assert counts is not None and (counts.total, counts.completed, counts.failed) == (24, 24, 0)
        time.sleep(2)  # the woken replica's lines in flight have ended (refused) by now
        assert b.batches.retrieve(batch.id).request_counts == counts
        assert _heard_of_takeover(stalled)
    finally:
        stalled.kill()
        other.stop()


def _chat_batch(sdk: openai.OpenAI, count: int, max_tokens: int) -> Batch:
    lines = [
        {
            "custom_id": f"s{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Count up from {i}."}],
                "max_tokens": max_tokens,
            },
        }
        for i in range(count)
    ]
    text = "\n".join(json.dumps(line) for line in lines).encode()
    upload = sdk.files.create(file=("in.jsonl", text), purpose="batch")
    return sdk.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def test_a_replica_frozen_between_its_fence_check_and_its_commit_cannot_commit(
    postgres: Cluster, tmp_path: Path
) -> None:
    """The holder of a batch stops (SIGSTOP) inside a line write, after the fence check and
    before its commit. Its open transaction keeps the lease from being claimed until the
    server ends that transaction (the idle timeout) and rolls its write back; then the
    other replica takes the batch over and finishes it while the first is still stopped.
    Woken, the first one's commit fails: each ``custom_id`` is in the output once.

    The window is made wide by the database itself: the test holds row locks on the lines
    still to run, so the holder's write waits, inside its transaction, at its UPDATE until
    it is stopped; released, the UPDATE is done and the transaction sits idle, open.
    (Without the lease row's lock the other replica claims at once, runs the same line
    and waits behind the frozen write for ever.)"""
    url = postgres.database()
    env = {
        "OASIS_LEASE_SECONDS": "1",
        "OASIS_BATCH_CONCURRENCY": "2",
        "OASIS_IDLE_TRANSACTION_SECONDS": "3",
    }
    # One data dir for both, as replicas share one volume for blobs: whichever replica
    # validates the batch reads its input file.
    a_server, b_server = _start_together(
        2, tmp_path, url, preload=["smollm2-135m-instruct"], env=env, timeout=600, shared=True
    )
    try:
        a = sdk_for(a_server, KEY)
        batch = _chat_batch(a, 16, 16)
        while (status := a.batches.retrieve(batch.id).status) == "validating":
            time.sleep(0.05)
        if status != "in_progress":
            pytest.skip(f"the batch went {status} before a write could be caught")
        holder = f"SELECT holder FROM leases WHERE job_id = '{batch.id}'"
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'UPDATE batch_lines%'"
        )
        pending = f"batch_id = '{batch.id}' AND NOT done"
        with postgres.rows_locked(url, "batch_lines", pending) as locked:
            assert locked > 0
            deadline = time.monotonic() + 300
            while postgres.psql(url, waiting) == "0":
                assert time.monotonic() < deadline, "no line write reached the lock"
                time.sleep(0.05)
            # The holder is inside finish_lines: fence checked, its UPDATE waiting. (On a
            # loaded machine the lease may have changed hands before: stop the holder.)
            now_holding = postgres.psql(url, holder)
            frozen, other = (a_server, b_server)
            if f"-{b_server.process.pid}-" in now_holding:
                frozen, other = (b_server, a_server)
            frozen.process.send_signal(signal.SIGSTOP)
        # The rows are free: the UPDATE is done, and its transaction sits open (idle).
        try:
            done = _batch_when(sdk_for(other, KEY), batch.id, lambda n: False, timeout=240)
            assert done.status == "completed", done
        finally:
            frozen.process.send_signal(signal.SIGCONT)
        assert done.output_file_id is not None and done.error_file_id is None
        survivor = sdk_for(other, KEY)
        text = survivor.files.content(done.output_file_id).text
        output = [json.loads(line) for line in text.splitlines()]
        assert sorted(line["custom_id"] for line in output) == sorted(f"s{i}" for i in range(16))
        counts = done.request_counts
        assert counts is not None
        assert (counts.total, counts.completed, counts.failed) == (16, 16, 0)
        # Done while the holder was stopped: its transaction was ended by the server (its
        # client could not have committed it). Woken, it stops, and nothing changes.
        deadline = time.monotonic() + 60
        while not _heard_of_takeover(frozen) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _heard_of_takeover(frozen)
        assert survivor.batches.retrieve(batch.id).request_counts == counts
        assert survivor.batches.retrieve(batch.id).output_file_id == done.output_file_id
    finally:
        a_server.kill()
        b_server.stop()


def _heard_of_takeover(server: Server) -> bool:
    return "taken over" in server.log() or "lost the lease" in server.log()


def _finished(batch: Batch) -> int:
    counts = batch.request_counts
    return 0 if counts is None else counts.completed + counts.failed


def _batch_when(
    sdk: openai.OpenAI, batch_id: str, ready: Callable[[int], bool], timeout: float = 300
) -> Batch:
    """The batch once ``ready(lines finished)`` holds, or it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = sdk.batches.retrieve(batch_id)
        if ready(_finished(batch)) or batch.status in {"completed", "failed", "cancelled"}:
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not get there in {timeout} s")


def test_search_on_one_replica_sees_store_changes_made_through_another(
    replicas: Replicas,
) -> None:
    """B holds the store's chunks in memory after its first search; a file added, a file
    detached and attributes updated through A each reach B's next search (B reloads when
    the store's generation in the database moves)."""
    a, b = (sdk_for(s, KEY) for s in replicas.servers[:2])
    texts = {
        "harbour.txt": "The violet submarine docks at Pier Nine every Tuesday morning.",
        "glider.txt": "The crimson glider lands on Hill Four when the wind drops.",
    }
    store = a.vector_stores.create(name="replicated")
    harbour = a.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("harbour.txt", texts["harbour.txt"].encode()),
        poll_interval_ms=100,
    )
    assert harbour.status == "completed", harbour.last_error
    query = "Where does the crimson glider land?"
    first = b.vector_stores.search(store.id, query=query)  # B now holds the store
    assert [r.file_id for r in first.data] == [harbour.id]

    glider = a.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("glider.txt", texts["glider.txt"].encode()),
        poll_interval_ms=100,
    )
    assert glider.status == "completed", glider.last_error
    found = b.vector_stores.search(store.id, query=query)
    assert [r.file_id for r in found.data] == [glider.id, harbour.id]
    assert "crimson glider" in found.data[0].content[0].text

    a.vector_stores.files.update(glider.id, vector_store_id=store.id, attributes={"team": "red"})
    red: ComparisonFilter = {"type": "eq", "key": "team", "value": "red"}
    filtered = b.vector_stores.search(store.id, query=query, filters=red)
    assert [(r.file_id, r.attributes) for r in filtered.data] == [(glider.id, {"team": "red"})]
    a.vector_stores.files.update(glider.id, vector_store_id=store.id, attributes={"team": "blue"})
    assert b.vector_stores.search(store.id, query=query, filters=red).data == []
    unfiltered = b.vector_stores.search(store.id, query=query)
    assert {r.file_id: r.attributes for r in unfiltered.data}[glider.id] == {"team": "blue"}

    a.vector_stores.files.delete(glider.id, vector_store_id=store.id)
    after = b.vector_stores.search(store.id, query=query)
    assert [r.file_id for r in after.data] == [harbour.id]
    a.vector_stores.delete(store.id)
    with pytest.raises(openai.NotFoundError):
        b.vector_stores.search(store.id, query=query)


def test_a_job_whose_replica_is_killed_is_ended_by_another(replicas: Replicas) -> None:
    # The third replica runs the jobs, and dies mid-run (so this test comes last).
    doomed = replicas.servers[2]
    try:
        with _api(doomed) as c, _api(replicas.servers[0]) as a:
            plain = c.post("/responses", json={"model": MODEL, "background": True, **LONG})
            plain_id = plain.json()["id"]
            streamed = _read_events(
                c, {"model": MODEL, "background": True, "stream": True, **LONG}, 3
            )
            streamed_id = streamed[0]["response"]["id"]
            for response_id in (plain_id, streamed_id):
                assert _wait(a, response_id, {"in_progress"} | FINAL)["status"] == "in_progress"
            doomed.kill()
            # Another replica takes the jobs over once their leases run out (seconds).
            for response_id in (plain_id, streamed_id):
                ended = _wait(a, response_id, FINAL, timeout=60)
                assert ended["status"] == "failed", ended
                assert ended["error"]["code"] == "server_error"
            # A follower of the stream sees it end, on a replica that never ran it.
            events = sse_events(a.get(f"/responses/{streamed_id}", params={"stream": "true"}))
            assert events[0]["type"] == "response.created"
            assert events[-1]["type"] == "response.failed"
            numbers = [e["sequence_number"] for e in events]
            assert numbers == list(range(len(events)))
    finally:
        doomed.kill()
