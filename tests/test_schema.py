"""Unit: every road to the newest schema ends at the same schema.

A fresh database runs every migration step from nothing; one built by hand as schema
version 1 (as an old server wrote it) runs the steps after 1; ``tables.py`` describes the
newest schema for the queries. If version 1's DDL is edited instead of adding a step, the
first two differ; if ``tables.py`` changes without a step, the last differs.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect

from oasis.owners import OwnerIds
from oasis.store import tables
from oasis.store.db import open_database
from oasis.store.migrations import STEPS
from tests.schema_v1 import V1_SCHEMA


def _schema(path: Path, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Tables with their columns, primary keys and indexes, as the database reports them."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            return {
                name: {
                    "columns": [
                        (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                        for c in found.get_columns(name)
                    ],
                    "primary_key": found.get_pk_constraint(name)["constrained_columns"],
                    "indexes": sorted(
                        (
                            i["name"],
                            tuple(i["column_names"]),
                            bool(i["unique"]),
                            str(i.get("dialect_options", {}).get("sqlite_where")),
                        )
                        for i in found.get_indexes(name)
                    ),
                }
                for name in sorted(found.get_table_names())
                if name not in skip
            }
    finally:
        engine.dispose()


def _migrate(data_dir: Path) -> None:
    """Open the database in ``data_dir`` as the server does, which migrates it."""

    async def run() -> None:
        owner_ids = OwnerIds(data_dir)
        owner_ids.open()
        engine = await open_database(None, data_dir, owner_ids)
        await engine.dispose()

    asyncio.run(run())


def test_fresh_and_upgraded_databases_have_the_same_schema(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    _migrate(fresh)

    upgraded = tmp_path / "upgraded"
    upgraded.mkdir()
    with sqlite3.connect(upgraded / "oasis.db") as db:
        db.executescript(V1_SCHEMA)
        db.execute("INSERT INTO oasis_schema_version (version) VALUES (1)")
    _migrate(upgraded)

    described = tmp_path / "tables.db"
    engine = create_engine(f"sqlite:///{described}")
    tables.metadata.create_all(engine)
    engine.dispose()

    newest = _schema(fresh / "oasis.db")
    assert newest == _schema(upgraded / "oasis.db")
    assert _schema(fresh / "oasis.db", skip=("oasis_schema_version",)) == _schema(described)
    for path in (fresh, upgraded):
        with sqlite3.connect(path / "oasis.db") as db:
            assert db.execute("SELECT version FROM oasis_schema_version").fetchall() == [
                (len(STEPS),)
            ]
