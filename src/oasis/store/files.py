"""File metadata, per owner: what ``/v1/files`` lists; the bytes are blobs (``store.blobs``).

A file past its ``expires_at`` is invisible to every read here, whether or not the sweep
(:meth:`FileRepository.take_expired`) has removed its row yet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.store.owned import OwnedRows, each
from oasis.store.pagination import Page, PageQuery
from oasis.store.storage import StorageCap, reserve
from oasis.store.tables import files


@dataclass(frozen=True)
class StoredFile:
    id: str
    created_at: int
    expires_at: int | None
    bytes: int
    filename: str
    purpose: str


_COLUMNS = [
    files.c.id,
    files.c.created_at,
    files.c.expires_at,
    files.c.bytes,
    files.c.filename,
    files.c.purpose,
]


def _stored(row: Row[Any]) -> StoredFile:
    return StoredFile(row.id, row.created_at, row.expires_at, row.bytes, row.filename, row.purpose)


def _unexpired(now: int) -> ColumnElement[bool]:
    return or_(files.c.expires_at.is_(None), files.c.expires_at > now)


class FileRepository:
    """Rows of the ``files`` table, each visible only to its owner and until it expires."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.rows = OwnedRows(engine, files, each(_stored), columns=_COLUMNS)

    async def insert(self, owner: str, stored: StoredFile, cap: StorageCap | None = None) -> None:
        """A new file's row; raises :class:`~oasis.store.storage.StorageFull`, adding
        nothing, when it would take the owner past ``cap``."""

        async def check(conn: AsyncConnection) -> None:
            await reserve(conn, cap, stored.bytes)

        await self.rows.insert(owner, asdict(stored), check=check)

    async def get(self, owner: str, file_id: str, now: int) -> StoredFile | None:
        return await self.rows.get(owner, file_id, _unexpired(now))

    async def page(
        self, owner: str, now: int, query: PageQuery, *, purpose: str | None
    ) -> Page[StoredFile]:
        return await self.rows.page(owner, query, _unexpired(now), purpose=purpose)

    async def delete(self, owner: str, file_id: str) -> bool:
        """Remove a file's row (expired or not); False if the owner has no such file."""
        return await self.rows.delete(owner, file_id)

    async def take_expired(self, now: int, limit: int = 500) -> list[tuple[str, str]]:
        """Remove up to ``limit`` expired rows; their ``(owner, id)`` pairs.

        Each row is removed by exactly one caller (DELETE ... RETURNING), so replicas
        sweeping at once never both report the same file.
        """
        async with self.engine.begin() as conn:
            ids = (
                await conn.execute(
                    select(files.c.id)
                    .where(and_(files.c.expires_at.is_not(None), files.c.expires_at <= now))
                    .limit(limit)
                )
            ).scalars()
            wanted = list(ids)
            if not wanted:
                return []
            rows = await conn.execute(
                delete(files).where(files.c.id.in_(wanted)).returning(files.c.owner, files.c.id)
            )
            return [(row.owner, row.id) for row in rows]

    async def known(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` have a row (for finding blobs that no row owns)."""
        return await existing_ids(self.engine, files.c.id, ids)


async def existing_ids(engine: AsyncEngine, column: ColumnElement[str], ids: list[str]) -> set[str]:
    """Which of ``ids`` appear in ``column`` (asked in batches, for bound-parameter limits)."""
    found: set[str] = set()
    async with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            rows = await conn.execute(select(column).where(column.in_(ids[start : start + 500])))
            found.update(rows.scalars())
    return found
