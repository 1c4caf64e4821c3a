"""A small versioned migration runner, run at start-up.

Each step moves the schema from version ``n-1`` to ``n`` and runs once, in order, inside
one transaction with the version bump. A new schema change is a new step appended to
:data:`STEPS` (never an edit of an old one). A step that needs the server's owner ids
finds them in ``conn.info[OWNER_IDS]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, column, inspect, select, table, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from oasis.owners import LEGACY_PREFIX, OwnerIds
from oasis.store import tables

log = logging.getLogger(__name__)

OWNER_IDS = "oasis.owner_ids"  # the server's OwnerIds, in conn.info while steps run


def _v1_initial(conn: Connection) -> None:
    tables.metadata.create_all(
        conn,
        tables=[tables.responses, tables.items, tables.conversations, tables.response_events],
    )


def _v2_conversation_positions(conn: Connection) -> None:
    """Give each conversation item its own position, and each conversation a counter.

    Version 1 read the last position outside the appending write, so concurrent appends
    could share positions. They are renumbered 0, 1, 2, ... per conversation in the order
    they were stored (position, then row id); ``next_position`` starts after the last one;
    a unique index keeps it so. Plain SQL (SQLite and PostgreSQL alike), independent of
    the current table definitions; a database created with them already has the column
    and the index, and only its positions are checked.
    """
    columns = {column["name"] for column in inspect(conn).get_columns("conversations")}
    if "next_position" not in columns:
        conn.execute(
            text("ALTER TABLE conversations ADD COLUMN next_position INTEGER NOT NULL DEFAULT 0")
        )
    rows = conn.execute(
        text(
            "SELECT pk, conversation_id, position FROM items WHERE role = 'conversation' "
            "ORDER BY conversation_id, position, pk"
        )
    ).all()
    counters: dict[str, int] = {}
    moved: list[dict[str, int]] = []
    for pk, conversation_id, position in rows:
        wanted = counters.get(conversation_id, 0)
        counters[conversation_id] = wanted + 1
        if position != wanted:
            moved.append({"pk": pk, "position": wanted})
    if moved:
        log.warning("database: renumbering %d conversation item position(s)", len(moved))
        conn.execute(text("UPDATE items SET position = :position WHERE pk = :pk"), moved)
    conn.execute(
        text(
            "UPDATE conversations SET next_position = COALESCE((SELECT MAX(items.position) + 1 "
            "FROM items WHERE items.conversation_id = conversations.id "
            "AND items.role = 'conversation'), 0)"
        )
    )
    conn.execute(
        text(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_items_conversation_position "
            "ON items (conversation_id, position) WHERE role = 'conversation'"
        )
    )


def _v3_keyed_owners(conn: Connection) -> None:
    """Owner ids become HMACs under the server secret (:mod:`oasis.owners`).

    Every legacy id (a bare SHA-256 of a key), in every table that has an ``owner``
    column, is replaced by its keyed form, so a copy of the database no longer lets
    anyone test guessed keys. Depends on no other step's content.
    """
    owner_ids: OwnerIds = conn.info[OWNER_IDS]
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        # Zero the bytes of the replaced ids (row and index cells) instead of leaving them
        # in the file's free space; PostgreSQL drops old row versions at its next VACUUM.
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
    inspector = inspect(conn)
    for name in inspector.get_table_names():
        if "owner" not in {c["name"] for c in inspector.get_columns(name)}:
            continue
        owned = table(name, column("owner"))
        legacy = (
            select(owned.c.owner)
            .distinct()
            .where(owned.c.owner.startswith(LEGACY_PREFIX, autoescape=True))
        )
        for old in conn.execute(legacy).scalars().all():
            conn.execute(
                update(owned).where(owned.c.owner == old).values(owner=owner_ids.of_legacy(old))
            )
    if sqlite:
        conn.exec_driver_sql("PRAGMA secure_delete = OFF")


STEPS: list[Callable[[Connection], None]] = [
    _v1_initial,
    _v2_conversation_positions,
    _v3_keyed_owners,
]


def _current_version(conn: Connection) -> int:
    if not inspect(conn).has_table(tables.schema_version.name):
        tables.schema_version.create(conn)
        return 0
    version = conn.execute(select(tables.schema_version.c.version)).scalar()
    return int(version or 0)


def _migrate(conn: Connection, owner_ids: OwnerIds) -> int:
    conn.info[OWNER_IDS] = owner_ids
    try:
        return _run_steps(conn)
    finally:
        del conn.info[OWNER_IDS]


def _run_steps(conn: Connection) -> int:
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


async def migrate(engine: AsyncEngine, owner_ids: OwnerIds) -> int:
    """Bring the database to the newest schema; returns the version it is at."""
    async with engine.begin() as conn:
        return await conn.run_sync(_migrate, owner_ids)
