"""The async engine: SQLite in WAL mode under the data dir by default, or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from oasis.owners import OwnerIds
from oasis.store.migrations import migrate

# Seconds PostgreSQL lets a transaction sit idle (its client silent) before ending it.
DEFAULT_IDLE_TRANSACTION_SECONDS = 30.0


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


def postgres_settings(idle_transaction_seconds: float) -> dict[str, str]:
    """The session settings of each PostgreSQL connection.

    ``idle_in_transaction_session_timeout``: a transaction whose client stopped sending
    (a replica frozen by SIGSTOP or a paused VM, between a write and its commit) is ended
    by the server after this long and its writes rolled back, so the locks it holds (a
    lease row above all, see :mod:`oasis.store.leases`) do not keep other replicas from
    its work for ever. 0 turns it off.
    """
    return {"idle_in_transaction_session_timeout": str(round(idle_transaction_seconds * 1000))}


async def open_database(
    url: str | None,
    data_dir: Path,
    owner_ids: OwnerIds,
    *,
    idle_transaction_seconds: float = DEFAULT_IDLE_TRANSACTION_SECONDS,
) -> AsyncEngine:
    """Create the engine and run migrations (which re-key legacy rows with ``owner_ids``)."""
    full = database_url(url, data_dir)
    if full.startswith("sqlite"):
        data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(full)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(
            full,
            pool_pre_ping=True,
            connect_args={"server_settings": postgres_settings(idle_transaction_seconds)},
        )
    await migrate(engine, owner_ids)
    return engine
