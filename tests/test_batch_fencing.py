"""Exactly-once batch results under leases.

Unit tier, on the real database (SQLite, and PostgreSQL when installed): a holder whose
lease another replica has taken over has its writes refused by the lease's generation (the
fence), the new holder's land once each, and the counts and results read back hold each
line once. The end-to-end case (a replica stopped past its lease and resumed) is in
``test_replicas.py``.

A holder frozen inside a write's transaction (checked, not yet committed) keeps its lease
from being claimed until PostgreSQL ends that transaction (its idle timeout); a background
response's writes, guarded by the row's own status, wait for it the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import and_, update
from sqlalchemy.exc import DBAPIError

from oasis.owners import OwnerIds
from oasis.store import Store
from oasis.store.batches import LineResult, PendingLine
from oasis.store.db import open_database
from oasis.store.leases import LeaseLost, check_fence
from oasis.store.tables import batch_lines, responses
from tests.postgres import Cluster

KIND = "batch"
IDLE = 1.0  # seconds PostgreSQL lets a transaction sit idle here
BATCH = "batch_fenced"


def _result(line: int, holder: str) -> LineResult:
    return LineResult(line, False, {"custom_id": f"c{line}", "by": holder})


async def _new_batch(store: Store) -> None:
    await store.batches.insert(
        "owner",
        {
            "id": BATCH,
            "created_at": 0,
            "status": "validating",
            "endpoint": "/v1/chat/completions",
            "input_file_id": "file-x",
            "completion_window": "24h",
            "expires_at": 2**31 - 1,
            "metadata": None,
            "output_expires_after": None,
        },
    )


async def _scenario(store: Store) -> None:
    await _new_batch(store)
    leases = store.leases
    stale = await leases.claim(KIND, BATCH, "replica-a", ttl=0.2)
    assert stale is not None
    lines = [PendingLine(n, f"c{n}", {"n": n}) for n in (1, 2, 3)]
    assert await store.batches.start(BATCH, lines, "m", 0, stale)
    assert await store.batches.finish_lines(BATCH, [_result(1, "a")], stale) == [1]

    # A stalls past its lease; B takes the batch over (a new generation).
    await asyncio.sleep(0.3)
    fresh = await leases.claim(KIND, BATCH, "replica-b", ttl=30)
    assert fresh is not None and fresh.generation == stale.generation + 1
    assert await leases.renew("replica-a", 30) == []  # A hears it lost the lease

    # A's late result for line 2 is refused whole, with the one for line 3.
    with pytest.raises(LeaseLost):
        await store.batches.finish_lines(BATCH, [_result(2, "a"), _result(3, "a")], stale)
    # B runs the unfinished lines; a line done already keeps its first result.
    done = await store.batches.finish_lines(
        BATCH, [_result(2, "b"), _result(3, "b"), _result(1, "b")], fresh
    )
    assert done == [2, 3]
    # Nor may A move the batch along, or expire its lines.
    with pytest.raises(LeaseLost):
        await store.batches.transition(BATCH, "finalizing", ["in_progress"], 0, fence=stale)
    with pytest.raises(LeaseLost):
        await store.batches.expire_pending(BATCH, stale)
    assert await store.batches.transition(BATCH, "finalizing", ["in_progress"], 0, fence=fresh)

    stored = await store.batches.get("owner", BATCH)
    assert stored is not None and stored.status == "finalizing"
    assert (stored.counts.total, stored.counts.completed, stored.counts.failed) == (3, 3, 0)
    results = [item async for item in store.batches.results(BATCH, failed=False)]
    assert [(custom_id, r and r["by"]) for custom_id, r in results] == [
        ("c1", "a"),
        ("c2", "b"),
        ("c3", "b"),
    ]


async def _frozen_writer(store: Store, other: Store) -> None:
    """A holder checks its fence and writes a line inside a transaction it then leaves
    open (a replica frozen before its commit). The lease cannot be claimed meanwhile; the
    server ends the transaction after its idle timeout (rolling the line back); then the
    other replica claims and writes the line, and the first one's commit fails."""
    await _new_batch(store)
    stale = await store.leases.claim(KIND, BATCH, "replica-a", ttl=0.2)
    assert stale is not None
    lines = [PendingLine(n, f"c{n}", {"n": n}) for n in (1, 2)]
    assert await store.batches.start(BATCH, lines, "m", 0, stale)
    conn = await store.engine.connect()
    try:
        await conn.begin()
        await check_fence(conn, stale)
        await conn.execute(
            update(batch_lines)
            .where(and_(batch_lines.c.batch_id == BATCH, batch_lines.c.line == 1))
            .values(done=True, result={"custom_id": "c1", "by": "a"})
        )
        await asyncio.sleep(0.3)  # A's lease has expired; its transaction is still open
        assert await other.leases.claim(KIND, BATCH, "replica-b", ttl=30) is None
        fresh = None
        for _ in range(100):  # the server ends A's transaction after IDLE seconds
            await asyncio.sleep(0.1)
            fresh = await other.leases.claim(KIND, BATCH, "replica-b", ttl=30)
            if fresh is not None:
                break
        assert fresh is not None and fresh.generation == stale.generation + 1
        assert await other.batches.finish_lines(BATCH, [_result(1, "b")], fresh) == [1]
        with pytest.raises(DBAPIError):
            await conn.commit()
    finally:
        await conn.close()
    results = [item async for item in other.batches.results(BATCH, failed=False)]
    assert [(custom_id, r and r["by"]) for custom_id, r in results] == [("c1", "b")]


async def _frozen_response_writer(store: Store, other: Store) -> None:
    """A background response's holder writes its end inside a transaction it leaves open;
    the replica that adopts the job waits for that row until the server ends the
    transaction, then records the end itself; the first one's commit fails."""
    body = {"id": "resp_frozen", "created_at": 0, "status": "in_progress", "background": True}
    await store.responses.insert("owner", body, inputs=[], stream=False)
    conn = await store.engine.connect()
    try:
        await conn.begin()
        await conn.execute(
            update(responses)
            .where(responses.c.id == body["id"])
            .values(status="completed", body={**body, "status": "completed"})
        )
        failed = {**body, "status": "failed"}
        # (Without the server's timeout this waits until the holder wakes: here, never.)
        assert await asyncio.wait_for(other.responses.update_snapshot("owner", failed), 30)
        with pytest.raises(DBAPIError):
            await conn.commit()
    finally:
        await conn.close()
    stored = await other.responses.get("owner", body["id"])
    assert stored is not None and stored.status == "failed"


def _run(url: str | None, data_dir: Path, body: Callable[[Store], Awaitable[None]]) -> None:
    async def run() -> None:
        owner_ids = OwnerIds(data_dir)
        owner_ids.open()
        store = Store(await open_database(url, data_dir, owner_ids))
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(run())


def test_a_stale_holder_cannot_write_results_sqlite(tmp_path: Path) -> None:
    _run(None, tmp_path, _scenario)


@pytest.mark.slow
def test_a_stale_holder_cannot_write_results_postgres(tmp_path: Path, postgres: Cluster) -> None:
    _run(postgres.database(), tmp_path, _scenario)


def _two_stores(url: str, data_dir: Path, body: Callable[[Store, Store], Awaitable[None]]) -> None:
    """Run ``body`` with two stores on one PostgreSQL database (two replicas) whose
    transactions PostgreSQL ends after ``IDLE`` idle seconds."""

    async def run() -> None:
        owner_ids = OwnerIds(data_dir)
        owner_ids.open()
        stores = [
            Store(await open_database(url, data_dir, owner_ids, idle_transaction_seconds=IDLE))
            for _ in range(2)
        ]
        try:
            await body(*stores)
        finally:
            for store in stores:
                await store.close()

    asyncio.run(run())


@pytest.mark.slow
def test_a_holder_frozen_inside_its_write_keeps_the_lease_until_the_server_ends_it(
    tmp_path: Path, postgres: Cluster
) -> None:
    _two_stores(postgres.database(), tmp_path, _frozen_writer)


@pytest.mark.slow
def test_a_frozen_response_write_holds_its_row_until_the_server_ends_it(
    tmp_path: Path, postgres: Cluster
) -> None:
    _two_stores(postgres.database(), tmp_path, _frozen_response_writer)
