"""Vector stores, their files, file batches and chunks, per owner.

A store's ``file_counts`` and ``usage_bytes`` and a batch's counts are computed from the
file rows whenever they are read, so they are exact by construction. A file's chunks are
written in the same transaction that marks it ``completed``: a file is either fully
indexed or not at all, and re-running its ingestion (after a restart) is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.retrieval.filters import to_sql
from oasis.store.owned import OwnedRows, each
from oasis.store.pagination import Page, PageQuery
from oasis.store.tables import (
    vector_store_chunks,
    vector_store_file_batches,
    vector_store_files,
    vector_stores,
)
from oasis.store.usage import record_bytes

STATUSES = ("in_progress", "completed", "failed", "cancelled")
USAGE_KIND = "vector_stores"  # the usage records of stored bytes


@dataclass(frozen=True)
class Counts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled

    def as_dict(self) -> dict[str, int]:
        return {
            "in_progress": self.in_progress,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "total": self.total,
        }


@dataclass(frozen=True)
class StoredStore:
    id: str
    created_at: int
    name: str
    metadata: dict[str, str]
    expires_after: dict[str, Any] | None
    last_active_at: int | None
    generation: int
    counts: Counts
    usage_bytes: int


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    vector_store_id: str
    owner: str
    created_at: int
    filename: str
    status: str
    last_error: dict[str, str] | None
    chunking: dict[str, Any]
    attributes: dict[str, Any] | None
    usage_bytes: int
    batch_id: str | None


@dataclass(frozen=True)
class StoredBatch:
    id: str
    vector_store_id: str
    created_at: int
    status: str
    counts: Counts


@dataclass(frozen=True)
class NewChunk:
    text: str
    tokens: int
    embedding: bytes  # little-endian float32


@dataclass(frozen=True)
class FileLabel:
    filename: str
    attributes: dict[str, Any] | None


@dataclass(frozen=True)
class ChunkHit:
    chunk_id: int
    file_id: str
    filename: str
    attributes: dict[str, Any] | None
    text: str


_STORE_COLUMNS = [
    vector_stores.c.id,
    vector_stores.c.created_at,
    vector_stores.c.name,
    vector_stores.c.metadata,
    vector_stores.c.expires_after,
    vector_stores.c.last_active_at,
    vector_stores.c.generation,
]
_FILE_COLUMNS = [
    vector_store_files.c.file_id,
    vector_store_files.c.vector_store_id,
    vector_store_files.c.owner,
    vector_store_files.c.created_at,
    vector_store_files.c.filename,
    vector_store_files.c.status,
    vector_store_files.c.last_error,
    vector_store_files.c.chunking,
    vector_store_files.c.attributes,
    vector_store_files.c.usage_bytes,
    vector_store_files.c.batch_id,
]


def _one_file(owner: str, store_id: str, file_id: str) -> ColumnElement[bool]:
    return and_(
        vector_store_files.c.vector_store_id == store_id,
        vector_store_files.c.file_id == file_id,
        vector_store_files.c.owner == owner,
    )


def _file(row: Any) -> StoredFile:
    return StoredFile(*row)


async def _load_stores(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[StoredStore]:
    """Stores with their file counts and usage, counted from their file rows now."""
    loaded = []
    for row in rows:
        counts, usage = await _counts(conn, vector_store_files.c.vector_store_id == row.id)
        loaded.append(
            StoredStore(
                row.id,
                row.created_at,
                row.name,
                row.metadata,
                row.expires_after,
                row.last_active_at,
                row.generation,
                counts,
                usage,
            )
        )
    return loaded


async def _counts(conn: AsyncConnection, where: ColumnElement[bool]) -> tuple[Counts, int]:
    rows = await conn.execute(
        select(
            vector_store_files.c.status,
            func.count(),
            func.coalesce(func.sum(vector_store_files.c.usage_bytes), 0),
        )
        .where(where)
        .group_by(vector_store_files.c.status)
    )
    by_status: dict[str, int] = {}
    usage = 0
    for status, count, used in rows:
        by_status[status] = int(count)
        usage += int(used)
    return Counts(**{s: by_status.get(s, 0) for s in STATUSES}), usage


class VectorStoreRepository:
    """Every query is scoped by ``owner``; a store of another owner does not exist."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.store_rows = OwnedRows(engine, vector_stores, _load_stores, columns=_STORE_COLUMNS)
        self.file_rows = OwnedRows(
            engine, vector_store_files, each(_file), columns=_FILE_COLUMNS, id_column="file_id"
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- stores -----------------------------------------------------------------------

    async def create(
        self,
        owner: str,
        store_id: str,
        *,
        name: str,
        metadata: dict[str, str],
        expires_after: dict[str, Any] | None,
        created_at: int,
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(vector_stores).values(
                    id=store_id,
                    owner=owner,
                    created_at=created_at,
                    name=name,
                    metadata=metadata,
                    expires_after=expires_after,
                    last_active_at=created_at,
                    generation=0,
                )
            )

    async def get(self, owner: str, store_id: str) -> StoredStore | None:
        return await self.store_rows.get(owner, store_id)

    async def page(self, owner: str, query: PageQuery) -> Page[StoredStore]:
        return await self.store_rows.page(owner, query)

    async def update(self, owner: str, store_id: str, **values: Any) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(vector_stores)
                .where(and_(vector_stores.c.id == store_id, vector_stores.c.owner == owner))
                .values(**values)
            )
        return bool(result.rowcount)

    async def delete(self, owner: str, store_id: str) -> bool:
        """Remove a store with its files, batches and chunks; False if the owner has none."""

        async def cascade(conn: AsyncConnection) -> None:
            stored = await self._stored_bytes(
                conn, vector_store_files.c.vector_store_id == store_id
            )
            await record_bytes(conn, owner, USAGE_KIND, -stored)
            await self._drop_chunks(conn, vector_store_chunks.c.vector_store_id == store_id)
            await conn.execute(
                delete(vector_store_files).where(vector_store_files.c.vector_store_id == store_id)
            )
            await conn.execute(
                delete(vector_store_file_batches).where(
                    vector_store_file_batches.c.vector_store_id == store_id
                )
            )

        return await self.store_rows.delete(owner, store_id, cascade=cascade)

    async def generation(self, store_id: str) -> int | None:
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    select(vector_stores.c.generation).where(vector_stores.c.id == store_id)
                )
            ).scalar()
        return None if value is None else int(value)

    # -- files ------------------------------------------------------------------------

    async def add_file(
        self,
        owner: str,
        store_id: str,
        file_id: str,
        *,
        filename: str,
        attributes: dict[str, Any] | None,
        chunking: dict[str, Any],
        created_at: int,
        batch_id: str | None = None,
    ) -> tuple[StoredFile, bool]:
        """Attach a file (``in_progress``); an attached one comes back as it is, with
        False (or, in a batch, joins it if it is not being processed)."""
        async with self.engine.begin() as conn:
            in_store = vector_store_files.c.vector_store_id == store_id
            existing = await self.file_rows.get_in(conn, owner, file_id, in_store)
            if existing is not None:
                return existing, False
            await conn.execute(
                insert(vector_store_files).values(
                    vector_store_id=store_id,
                    file_id=file_id,
                    owner=owner,
                    created_at=created_at,
                    filename=filename,
                    status="in_progress",
                    last_error=None,
                    chunking=chunking,
                    attributes=attributes,
                    usage_bytes=0,
                    batch_id=batch_id,
                )
            )
            added = await self.file_rows.get_in(conn, owner, file_id, in_store)
        assert added is not None
        return added, True

    async def file(self, owner: str, store_id: str, file_id: str) -> StoredFile | None:
        return await self.file_rows.get(
            owner, file_id, vector_store_files.c.vector_store_id == store_id
        )

    async def file_page(
        self,
        owner: str,
        store_id: str,
        query: PageQuery,
        *,
        status: str | None,
        batch_id: str | None = None,
    ) -> Page[StoredFile]:
        in_store = vector_store_files.c.vector_store_id == store_id
        return await self.file_rows.page(owner, query, in_store, status=status, batch_id=batch_id)

    async def set_attributes(
        self, owner: str, store_id: str, file_id: str, attributes: dict[str, Any] | None
    ) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(vector_store_files)
                .where(_one_file(owner, store_id, file_id))
                .values(attributes=attributes)
            )
            # Searches hold attributes in memory with the chunks: a new generation reloads.
            if result.rowcount:
                await self._bump(conn, store_id)
        return bool(result.rowcount)

    async def remove_file(self, owner: str, store_id: str, file_id: str) -> bool:
        """Detach a file from a store (its chunks go; the File stays)."""
        async with self.engine.begin() as conn:
            return await self._remove(conn, owner, store_id, file_id)

    async def remove_file_everywhere(self, owner: str, file_id: str) -> int:
        """Detach a deleted File from every store of its owner; how many it was in."""
        async with self.engine.begin() as conn:
            stores = (
                await conn.execute(
                    select(vector_store_files.c.vector_store_id).where(
                        and_(
                            vector_store_files.c.owner == owner,
                            vector_store_files.c.file_id == file_id,
                        )
                    )
                )
            ).scalars()
            removed = 0
            for store_id in list(stores):
                removed += await self._remove(conn, owner, store_id, file_id)
        return removed

    async def _remove(self, conn: AsyncConnection, owner: str, store_id: str, file_id: str) -> bool:
        stored = await self._stored_bytes(conn, _one_file(owner, store_id, file_id))
        result = await conn.execute(
            delete(vector_store_files).where(_one_file(owner, store_id, file_id))
        )
        if not result.rowcount:
            return False
        await record_bytes(conn, owner, USAGE_KIND, -stored)
        dropped = await self._drop_chunks(
            conn,
            and_(
                vector_store_chunks.c.vector_store_id == store_id,
                vector_store_chunks.c.file_id == file_id,
            ),
        )
        if dropped:
            await self._bump(conn, store_id)
        return True

    async def _drop_chunks(self, conn: AsyncConnection, where: ColumnElement[bool]) -> int:
        result = await conn.execute(delete(vector_store_chunks).where(where))
        return int(result.rowcount)

    @staticmethod
    async def _stored_bytes(conn: AsyncConnection, where: ColumnElement[bool]) -> int:
        """The bytes the files matching ``where`` hold (what the usage records counted)."""
        query = select(func.coalesce(func.sum(vector_store_files.c.usage_bytes), 0)).where(where)
        return int((await conn.execute(query)).scalar() or 0)

    @staticmethod
    async def _bump(conn: AsyncConnection, store_id: str) -> None:
        await conn.execute(
            update(vector_stores)
            .where(vector_stores.c.id == store_id)
            .values(generation=vector_stores.c.generation + 1)
        )

    async def in_progress(self) -> list[StoredFile]:
        """Every file still waiting to be indexed, oldest first (for start-up recovery)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(*_FILE_COLUMNS)
                .where(vector_store_files.c.status == "in_progress")
                .order_by(vector_store_files.c.pk)
            )
            return [_file(row) for row in rows]

    async def complete_file(
        self, owner: str, store_id: str, file_id: str, chunks: Sequence[NewChunk], usage: int
    ) -> bool:
        """Store the chunks and mark the file ``completed``, in one transaction; False (and
        nothing written) when it is no longer ``in_progress`` (cancelled or detached)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(vector_store_files)
                .where(
                    and_(
                        _one_file(owner, store_id, file_id),
                        vector_store_files.c.status == "in_progress",
                    )
                )
                .values(status="completed", usage_bytes=usage, last_error=None)
            )
            if not result.rowcount:
                return False
            # A file in progress holds no bytes yet: all of them are new.
            await record_bytes(conn, owner, USAGE_KIND, usage)
            # A run cut short by a crash wrote nothing, but an older copy never hurts to drop.
            await self._drop_chunks(
                conn,
                and_(
                    vector_store_chunks.c.vector_store_id == store_id,
                    vector_store_chunks.c.file_id == file_id,
                ),
            )
            await self._insert_chunks(conn, store_id, file_id, chunks)
            await self._bump(conn, store_id)
        return True

    @staticmethod
    async def _insert_chunks(
        conn: AsyncConnection, store_id: str, file_id: str, chunks: Sequence[NewChunk]
    ) -> None:
        if not chunks:
            return
        await conn.execute(
            insert(vector_store_chunks),
            [
                {
                    "vector_store_id": store_id,
                    "file_id": file_id,
                    "position": position,
                    "text": chunk.text,
                    "tokens": chunk.tokens,
                    "embedding": chunk.embedding,
                }
                for position, chunk in enumerate(chunks)
            ],
        )

    async def fail_file(
        self, owner: str, store_id: str, file_id: str, code: str, message: str
    ) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(vector_store_files)
                .where(
                    and_(
                        _one_file(owner, store_id, file_id),
                        vector_store_files.c.status == "in_progress",
                    )
                )
                .values(status="failed", last_error={"code": code, "message": message})
            )
        return bool(result.rowcount)

    # -- batches ----------------------------------------------------------------------

    async def create_batch(self, owner: str, store_id: str, batch_id: str, created_at: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(vector_store_file_batches).values(
                    id=batch_id,
                    vector_store_id=store_id,
                    owner=owner,
                    created_at=created_at,
                    status="in_progress",
                )
            )

    async def batch(self, owner: str, store_id: str, batch_id: str) -> StoredBatch | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        vector_store_file_batches.c.id,
                        vector_store_file_batches.c.vector_store_id,
                        vector_store_file_batches.c.created_at,
                        vector_store_file_batches.c.status,
                    ).where(
                        and_(
                            vector_store_file_batches.c.id == batch_id,
                            vector_store_file_batches.c.vector_store_id == store_id,
                            vector_store_file_batches.c.owner == owner,
                        )
                    )
                )
            ).first()
            if row is None:
                return None
            counts, _ = await _counts(conn, vector_store_files.c.batch_id == batch_id)
        status = row.status
        if status == "in_progress" and counts.in_progress == 0:
            status = "completed"
        return StoredBatch(row.id, row.vector_store_id, row.created_at, status, counts)

    async def cancel_batch(self, owner: str, store_id: str, batch_id: str) -> bool:
        """Cancel a batch's files still waiting; False if the batch does not exist."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(vector_store_file_batches)
                .where(
                    and_(
                        vector_store_file_batches.c.id == batch_id,
                        vector_store_file_batches.c.vector_store_id == store_id,
                        vector_store_file_batches.c.owner == owner,
                        vector_store_file_batches.c.status == "in_progress",
                    )
                )
                .values(status="cancelled")
            )
            if result.rowcount:
                await conn.execute(
                    update(vector_store_files)
                    .where(
                        and_(
                            vector_store_files.c.batch_id == batch_id,
                            vector_store_files.c.status == "in_progress",
                        )
                    )
                    .values(status="cancelled")
                )
        return await self.batch(owner, store_id, batch_id) is not None

    # -- search -----------------------------------------------------------------------

    async def index_rows(
        self, store_id: str
    ) -> tuple[list[tuple[int, str, bytes, str]], dict[str, FileLabel]]:
        """Every chunk of the store as (chunk id, file id, embedding blob, text), and the
        name and attributes of each of its files."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    vector_store_chunks.c.pk,
                    vector_store_chunks.c.file_id,
                    vector_store_chunks.c.embedding,
                    vector_store_chunks.c.text,
                )
                .where(vector_store_chunks.c.vector_store_id == store_id)
                .order_by(vector_store_chunks.c.pk)
            )
            chunks = [(int(pk), str(f), bytes(e), str(t)) for pk, f, e, t in rows]
            files = await conn.execute(
                select(
                    vector_store_files.c.file_id,
                    vector_store_files.c.filename,
                    vector_store_files.c.attributes,
                ).where(vector_store_files.c.vector_store_id == store_id)
            )
            labels = {str(f): FileLabel(str(name), attrs) for f, name, attrs in files}
        return chunks, labels

    async def matching_files(self, store_id: str, spec: dict[str, Any] | None) -> set[str]:
        """The completed files of the store whose attributes pass the filter ``spec``."""
        where = and_(
            vector_store_files.c.vector_store_id == store_id,
            vector_store_files.c.status == "completed",
        )
        if spec is not None:
            where = and_(where, to_sql(spec, vector_store_files.c.attributes, self.dialect))
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(vector_store_files.c.file_id).where(where))
            return {str(f) for f in rows.scalars()}
