"""Schema version 15: the full-text objects of version 6 (an FTS5 table on SQLite, a GIN
index on PostgreSQL), which nothing reads since keyword ranking moved into memory, are
dropped at start-up; the chunks stay, and deleting them writes nowhere else."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from oasis.owners import OwnerIds
from oasis.store import Store
from oasis.store.db import open_database
from oasis.store.migrations import STEPS
from oasis.store.tables import vector_store_chunks
from oasis.store.vector_stores import NewChunk
from tests.postgres import Cluster

# What version 14 held beside the chunks, as step 6 created it.
_V14_KEYWORDS = {
    "sqlite": [
        "CREATE VIRTUAL TABLE vector_store_chunks_fts "
        "USING fts5(text, tokenize='porter unicode61')",
        "INSERT INTO vector_store_chunks_fts (rowid, text) "
        "SELECT pk, text FROM vector_store_chunks",
    ],
    "postgresql": [
        "CREATE INDEX ix_vector_store_chunks_tsv ON vector_store_chunks "
        "USING gin (to_tsvector('english', text))"
    ],
}
# Where each database lists those objects, and the version-14 names to look for.
_FOUND = {
    "sqlite": "SELECT name FROM sqlite_master WHERE name LIKE 'vector_store_chunks_fts%'",
    "postgresql": "SELECT indexname FROM pg_indexes WHERE indexname = 'ix_vector_store_chunks_tsv'",
}


async def _names(conn: AsyncConnection) -> list[str]:
    return [str(name) for name in (await conn.execute(text(_FOUND[conn.dialect.name]))).scalars()]


def _scenario(url: str | None, data_dir: Path) -> None:
    async def run() -> None:
        owner_ids = OwnerIds(data_dir)
        owner_ids.open()
        # A database at version 14 with a store's chunks in it.
        store = Store(await open_database(url, data_dir, owner_ids))
        try:
            repo = store.vector_stores
            await repo.create(
                "owner", "vs_1", name="s", metadata={}, expires_after=None, created_at=1
            )
            for file_id in ("file-a", "file-b"):
                await repo.add_file(
                    "owner", "vs_1", file_id, filename=f"{file_id}.txt", attributes=None,
                    chunking={"type": "auto"}, created_at=1,
                )  # fmt: skip
                chunks = [NewChunk(f"{file_id} river bridge {i}", 4, b"\0" * 8) for i in range(3)]
                assert await repo.complete_file("owner", "vs_1", file_id, chunks, 10)
            async with store.engine.begin() as conn:
                for statement in _V14_KEYWORDS[conn.dialect.name]:
                    await conn.execute(text(statement))
                await conn.execute(text("UPDATE oasis_schema_version SET version = 14"))
                assert await _names(conn)
        finally:
            await store.close()

        store = Store(await open_database(url, data_dir, owner_ids))
        try:
            async with store.engine.connect() as conn:
                version = await conn.execute(text("SELECT version FROM oasis_schema_version"))
                assert version.scalar() == len(STEPS) == 15
                assert await _names(conn) == []
                texts = (await conn.execute(select(vector_store_chunks.c.text))).scalars()
                assert len(list(texts)) == 6
            # Detaching a file drops its chunks (and only its chunks) without the table.
            generation = await store.vector_stores.generation("vs_1")
            assert generation is not None
            assert await store.vector_stores.remove_file("owner", "vs_1", "file-a")
            assert await store.vector_stores.generation("vs_1") == generation + 1
            rows, _ = await store.vector_stores.index_rows("vs_1")
            assert {row[1] for row in rows} == {"file-b"} and len(rows) == 3
        finally:
            await store.close()

    asyncio.run(run())


def test_version_14_keyword_objects_are_dropped_sqlite(tmp_path: Path) -> None:
    _scenario(None, tmp_path)


@pytest.mark.slow
def test_version_14_keyword_objects_are_dropped_postgres(tmp_path: Path, postgres: Cluster) -> None:
    _scenario(postgres.database(), tmp_path)
