"""Containers and their files, per owner: what ``/v1/containers`` lists.

A container past ``last_active_at + expires_minutes`` is invisible to every read here,
whether or not the sweep (:meth:`ContainerRepository.take_expired`) has removed it yet.
A container file's bytes are the file in the container's working directory; its row
records where (``path``, inside the sandbox) and who wrote it (``source``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from oasis.store.owned import OwnedRows, each
from oasis.store.pagination import Page, PageQuery, fetch_page
from oasis.store.storage import StorageCap, reserve
from oasis.store.tables import container_files, containers


@dataclass(frozen=True)
class StoredContainer:
    id: str
    name: str
    created_at: int
    last_active_at: int
    expires_minutes: int
    memory_limit: str


@dataclass(frozen=True)
class StoredContainerFile:
    id: str
    container_id: str
    created_at: int
    bytes: int
    path: str
    source: str


_CONTAINER = [
    containers.c.id,
    containers.c.name,
    containers.c.created_at,
    containers.c.last_active_at,
    containers.c.expires_minutes,
    containers.c.memory_limit,
]
_FILE = [
    container_files.c.id,
    container_files.c.container_id,
    container_files.c.created_at,
    container_files.c.bytes,
    container_files.c.path,
    container_files.c.source,
]


def _container(row: Row[Any]) -> StoredContainer:
    return StoredContainer(
        row.id, row.name, row.created_at, row.last_active_at, row.expires_minutes, row.memory_limit
    )


def _file(row: Row[Any]) -> StoredContainerFile:
    return StoredContainerFile(
        row.id, row.container_id, row.created_at, row.bytes, row.path, row.source
    )


def _unexpired(now: int) -> ColumnElement[bool]:
    return containers.c.last_active_at + containers.c.expires_minutes * 60 > now


class ContainerRepository:
    """Rows of ``containers`` and ``container_files``, each visible only to its owner."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.rows = OwnedRows(engine, containers, each(_container), columns=_CONTAINER)

    async def insert(self, owner: str, stored: StoredContainer) -> None:
        await self.rows.insert(owner, asdict(stored))

    async def get(self, owner: str, container_id: str, now: int) -> StoredContainer | None:
        return await self.rows.get(owner, container_id, _unexpired(now))

    async def page(
        self, owner: str, now: int, query: PageQuery, *, name: str | None
    ) -> Page[StoredContainer]:
        return await self.rows.page(owner, query, _unexpired(now), name=name)

    async def touch(self, container_id: str, now: int) -> None:
        """Mark the container active now (it expires counting from here)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(containers).where(containers.c.id == container_id).values(last_active_at=now)
            )

    async def delete(self, owner: str, container_id: str) -> bool:
        """Remove a container and its file rows; False if the owner has no such one."""
        return await self.rows.delete(
            owner,
            container_id,
            cascade=lambda conn: conn.execute(
                delete(container_files).where(container_files.c.container_id == container_id)
            ),
        )

    async def take_expired(self, now: int, limit: int = 200) -> list[str]:
        """Remove up to ``limit`` expired containers (and their file rows); their ids.

        Each is removed by exactly one caller (DELETE ... RETURNING), so replicas sweeping
        at once never both clean up the same container."""
        async with self.engine.begin() as conn:
            ids = (
                await conn.execute(
                    select(containers.c.id)
                    .where(containers.c.last_active_at + containers.c.expires_minutes * 60 <= now)
                    .limit(limit)
                )
            ).scalars()
            wanted = list(ids)
            if not wanted:
                return []
            rows = await conn.execute(
                delete(containers).where(containers.c.id.in_(wanted)).returning(containers.c.id)
            )
            gone = [row.id for row in rows]
            await conn.execute(
                delete(container_files).where(container_files.c.container_id.in_(gone))
            )
        return gone

    async def all_ids(self) -> set[str]:
        """Every container id with a row (for working directories no row owns)."""
        async with self.engine.connect() as conn:
            return set((await conn.execute(select(containers.c.id))).scalars())

    # -- files -------------------------------------------------------------------------

    async def put_file(
        self, stored: StoredContainerFile, cap: StorageCap | None = None
    ) -> StoredContainerFile:
        """Record a file at ``stored.path``; a file already there keeps its id and gets
        the new size and source. Returns the row as stored. Raises
        :class:`~oasis.store.storage.StorageFull` when the file would take its owner past
        ``cap``."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(*_FILE).where(
                        and_(
                            container_files.c.container_id == stored.container_id,
                            container_files.c.path == stored.path,
                        )
                    )
                )
            ).first()
            await reserve(conn, cap, stored.bytes - (0 if row is None else int(row.bytes)))
            if row is None:
                await conn.execute(
                    container_files.insert().values(
                        id=stored.id,
                        container_id=stored.container_id,
                        created_at=stored.created_at,
                        bytes=stored.bytes,
                        path=stored.path,
                        source=stored.source,
                    )
                )
                return stored
            await conn.execute(
                update(container_files)
                .where(container_files.c.id == row.id)
                .values(bytes=stored.bytes, source=stored.source)
            )
            return StoredContainerFile(
                row.id, row.container_id, row.created_at, stored.bytes, row.path, stored.source
            )

    async def get_file(self, container_id: str, file_id: str) -> StoredContainerFile | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*_FILE).where(
                        and_(
                            container_files.c.container_id == container_id,
                            container_files.c.id == file_id,
                        )
                    )
                )
            ).first()
        return None if row is None else _file(row)

    async def files(self, container_id: str) -> list[StoredContainerFile]:
        """Every file row of the container."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(*_FILE).where(container_files.c.container_id == container_id)
            )
            return [_file(row) for row in rows]

    async def file_page(self, container_id: str, query: PageQuery) -> Page[StoredContainerFile]:
        async with self.engine.connect() as conn:
            page = await fetch_page(
                conn,
                list(_FILE),
                container_files.c.container_id == container_id,
                key=container_files.c.pk,
                cursor=container_files.c.id,
                after=query.after,
                order=query.order,
                limit=query.limit,
            )
        return Page([_file(row) for row in page.data], page.has_more)

    async def delete_files(self, container_id: str, file_ids: list[str]) -> int:
        """Remove file rows; how many there were."""
        if not file_ids:
            return 0
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(container_files).where(
                    and_(
                        container_files.c.container_id == container_id,
                        container_files.c.id.in_(file_ids),
                    )
                )
            )
        return int(result.rowcount or 0)
