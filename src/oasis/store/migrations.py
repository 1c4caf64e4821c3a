"""A small versioned migration runner, run at start-up.

Each step moves the schema from version ``n-1`` to ``n`` and runs once, in order, inside
one transaction with the version bump. A new schema change is a new step appended to
:data:`STEPS` (never an edit of an old one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from oasis.store import tables

log = logging.getLogger(__name__)


def _v1_initial(conn: Connection) -> None:
    tables.metadata.create_all(
        conn,
        tables=[tables.responses, tables.items, tables.conversations, tables.response_events],
    )


STEPS: list[Callable[[Connection], None]] = [_v1_initial]


def _current_version(conn: Connection) -> int:
    if not inspect(conn).has_table(tables.schema_version.name):
        tables.schema_version.create(conn)
        return 0
    version = conn.execute(select(tables.schema_version.c.version)).scalar()
    return int(version or 0)


def _migrate(conn: Connection) -> int:
    version = _current_version(conn)
    for number, step in enumerate(STEPS, start=1):
        if number <= version:
            continue
        log.info("database: migrating to schema version %d", number)
        step(conn)
        conn.execute(tables.schema_version.delete())
        conn.execute(tables.schema_version.insert().values(version=number))
        version = number
    return version


async def migrate(engine: AsyncEngine) -> int:
    """Bring the database to the newest schema; returns the version it is at."""
    async with engine.begin() as conn:
        return await conn.run_sync(_migrate)
