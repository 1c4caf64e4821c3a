"""How many bytes an owner stores, counted from the rows of what it stores, and the check
that a new object fits under a total.

The total is the sum of the ``bytes`` columns the stored objects already have: Files not
past their expiry, the parts of uploads not yet completed, and container files. It is
counted in the database, so replicas sharing it share one total. A write that must stay
under the total checks it in the transaction that adds its row (:func:`reserve`), after
taking a lock per owner that concurrent writers of the same owner queue on, so two writes
that each fit alone cannot both land past it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.store.tables import container_files, containers, files, upload_parts, uploads


@dataclass(frozen=True)
class StorageCap:
    """``owner`` may store at most ``max_total`` bytes in all."""

    owner: str
    max_total: int


async def stored_bytes(conn: AsyncConnection, owner: str) -> int:
    """The bytes ``owner`` stores now: files, upload parts and container files."""
    now = int(time.time())
    parts = [
        select(func.coalesce(func.sum(files.c.bytes), 0)).where(
            files.c.owner == owner,
            or_(files.c.expires_at.is_(None), files.c.expires_at > now),
        ),
        select(func.coalesce(func.sum(upload_parts.c.bytes), 0))
        .select_from(upload_parts.join(uploads, uploads.c.id == upload_parts.c.upload_id))
        .where(uploads.c.owner == owner),
        select(func.coalesce(func.sum(container_files.c.bytes), 0))
        .select_from(
            container_files.join(containers, containers.c.id == container_files.c.container_id)
        )
        .where(containers.c.owner == owner),
    ]
    total = 0
    for query in parts:
        total += int((await conn.execute(query)).scalar() or 0)
    return total


class StorageFull(Exception):
    """A write would take its owner past its cap: refused, its transaction rolled back."""

    def __init__(self, cap: StorageCap, used: int) -> None:
        super().__init__(f"{cap.owner} stores {used} of {cap.max_total} bytes")
        self.cap = cap
        self.used = used


async def reserve(conn: AsyncConnection, cap: StorageCap | None, adding: int) -> None:
    """Raise :class:`StorageFull` unless ``adding`` more bytes keep the owner within ``cap``
    (None: no cap); checked in ``conn``'s transaction, which holds the owner's lock from
    here until it ends, so the row it adds is counted before another writer checks."""
    if cap is None:
        return
    await _lock_owner(conn, cap.owner)
    used = await stored_bytes(conn, cap.owner)
    if used + adding > cap.max_total:
        raise StorageFull(cap, used)


async def _lock_owner(conn: AsyncConnection, owner: str) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"storage:{owner}"}
        )
        return
    # SQLite: one writer at a time. A write (one that changes no row) takes the database's
    # write lock now, so the sum read next is not changed by another writer before commit.
    await conn.execute(update(files).where(files.c.id.is_(None)).values(bytes=files.c.bytes))


class StorageRepository:
    """Reads an owner's stored total outside any write (to refuse early)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def used(self, owner: str) -> int:
        """The bytes ``owner`` stores now."""
        async with self.engine.connect() as conn:
            return await stored_bytes(conn, owner)
