"""The async engine: SQLite in WAL mode under the data dir by default, or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from oasis.owners import OwnerIds
from oasis.store.migrations import migrate


def database_url(url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy async URL: ``url`` with its async driver, or SQLite in ``data_dir``."""
    if not url:
        return f"sqlite+aiosqlite:///{data_dir / 'oasis.db'}"
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url[len(plain) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; NORMAL sync is durable across process
    # crashes (only an OS crash can lose the last transactions); busy_timeout makes
    # concurrent writers wait instead of failing.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


async def open_database(url: str | None, data_dir: Path, owner_ids: OwnerIds) -> AsyncEngine:
    """Create the engine and run migrations (which re-key legacy rows with ``owner_ids``)."""
    full = database_url(url, data_dir)
    if full.startswith("sqlite"):
        data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(full)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(full, pool_pre_ping=True)
    await migrate(engine, owner_ids)
    return engine
