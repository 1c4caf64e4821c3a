"""Leases on background work: which replica runs a job, until when.

A lease is a row ``(kind, job_id)`` naming its holder and the time it expires. Claiming
locks the row with ``SELECT … FOR UPDATE SKIP LOCKED``, so of several replicas reaching
for one job at once exactly one gets it; a new lease is an insert that a concurrent one
makes fail. The holder renews its leases while it works; once a lease has expired (its
holder died), any replica may claim it.

Every claim bumps the lease's ``generation``. A holder's writes for its job carry the
generation it claimed (a :class:`Fence`) and check it in their own transaction
(:func:`check_fence`), so a replica that stalled past its lease while another took the
job over has its late writes refused rather than mixed with the new holder's.

On PostgreSQL the check also locks the lease row (``FOR KEY SHARE``) until the write's
transaction ends, and a claim skips a locked row: a holder frozen between its check and
its commit cannot be taken over, so its write can never land after a takeover. What ends
such a frozen transaction is the server: every connection sets
``idle_in_transaction_session_timeout`` (:mod:`oasis.store.db`), after which PostgreSQL
rolls the write back and the lease can be claimed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import and_, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.store.tables import leases

# How long a claim waits for a lock before it gives up (PostgreSQL's ``lock_timeout``, ms)
# and the SQLSTATE of giving up.
CLAIM_LOCK_WAIT_MS = 2000
LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class Renewed:
    """A lease its holder still has, and whether another replica asked it to stop."""

    kind: str
    job_id: str
    stop: bool


@dataclass(frozen=True)
class Fence:
    """A holder's claim on a job: its writes are valid while the lease still names it at
    this generation."""

    kind: str
    job_id: str
    holder: str
    generation: int


class LeaseLost(Exception):
    """A write for a job whose lease another replica has taken over since: refused.
    Internal: the job stops quietly on this replica, its new holder carries on."""


async def check_fence(conn: AsyncConnection, fence: Fence | None) -> None:
    """Raise :class:`LeaseLost` unless ``fence`` still holds, inside ``conn``'s transaction.

    On PostgreSQL the lease row stays key-share locked until the transaction ends. That
    lock lets the holder's own renewals and other replicas' stop requests through (they
    change no key), but not a claim (``FOR UPDATE``): a takeover either committed before
    this check (which then refuses the write) or waits until the write has ended, and a
    holder frozen inside its transaction holds the job only until the server's idle
    transaction timeout rolls that transaction back. SQLite has one writer at a time
    (and one process, so no leases). None (no leases: one process) passes.
    """
    if fence is None:
        return
    held = (
        await conn.execute(
            select(leases.c.generation)
            .where(
                and_(
                    leases.c.kind == fence.kind,
                    leases.c.job_id == fence.job_id,
                    leases.c.holder == fence.holder,
                    leases.c.generation == fence.generation,
                )
            )
            .with_for_update(read=True, key_share=True)
        )
    ).first()
    if held is None:
        raise LeaseLost(f"The lease on {fence.kind} {fence.job_id} was taken over.")


async def _claim_in(
    conn: AsyncConnection, kind: str, job_id: str, holder: str, ttl: float
) -> Fence | None:
    now = time.time()
    # SKIP LOCKED: a lease row another transaction has locked is not claimable now (it is
    # being claimed, or a write under its holder's fence is open).
    row = (
        await conn.execute(
            select(leases.c.holder, leases.c.expires_at, leases.c.generation)
            .where(and_(leases.c.kind == kind, leases.c.job_id == job_id))
            .with_for_update(skip_locked=True)
        )
    ).first()
    if row is None:
        # No lease, or its row is locked and skipped: the insert then conflicts and does
        # nothing.
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        result = await conn.execute(
            insert(leases)
            .values(
                kind=kind,
                job_id=job_id,
                holder=holder,
                expires_at=now + ttl,
                stop=False,
                generation=1,
            )
            .on_conflict_do_nothing()
        )
        return Fence(kind, job_id, holder, 1) if result.rowcount else None
    if row.holder != holder and row.expires_at >= now:
        return None
    generation = int(row.generation) + 1
    await conn.execute(
        update(leases)
        .where(and_(leases.c.kind == kind, leases.c.job_id == job_id))
        .values(holder=holder, expires_at=now + ttl, stop=False, generation=generation)
    )
    return Fence(kind, job_id, holder, generation)


class LeaseRepository:
    """Claim, renew, release and ask to stop; times are seconds since the epoch."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def claim(self, kind: str, job_id: str, holder: str, ttl: float) -> Fence | None:
        """Take the lease if nobody holds it, it has expired, or ``holder`` has it already;
        the fence of this claim (a new generation), or None if another replica holds it
        (or a write under the current holder's fence is still open: try again later)."""
        try:
            async with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # A claim is retried by the next sweep: it never queues behind a lock.
                    await conn.execute(text(f"SET LOCAL lock_timeout = {CLAIM_LOCK_WAIT_MS}"))
                return await _claim_in(conn, kind, job_id, holder, ttl)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                return None
            raise

    async def renew(self, holder: str, ttl: float) -> list[Renewed]:
        """Extend every lease ``holder`` has; the leases it still has."""
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                update(leases)
                .where(leases.c.holder == holder)
                .values(expires_at=time.time() + ttl)
                .returning(leases.c.kind, leases.c.job_id, leases.c.stop)
            )
            return [Renewed(r.kind, r.job_id, bool(r.stop)) for r in rows]

    async def release(self, kind: str, job_id: str, holder: str) -> None:
        """Give the lease up (the job ended); one another replica took over stays."""
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(leases).where(
                    and_(
                        leases.c.kind == kind,
                        leases.c.job_id == job_id,
                        leases.c.holder == holder,
                    )
                )
            )

    async def request_stop(self, kind: str, job_id: str) -> bool:
        """Ask the holder of a live lease to stop the job; False if no live lease exists."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(leases)
                .where(
                    and_(
                        leases.c.kind == kind,
                        leases.c.job_id == job_id,
                        leases.c.expires_at >= time.time(),
                    )
                )
                .values(stop=True)
            )
            return bool(result.rowcount)

    async def live(self, kind: str) -> set[str]:
        """The job ids of ``kind`` whose leases have not expired."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(leases.c.job_id).where(
                    and_(leases.c.kind == kind, leases.c.expires_at >= time.time())
                )
            )
            return set(rows.scalars())
