"""Schema version 2: a database written by version 1, with the duplicate conversation
positions that its concurrent appends could leave, is repaired at start-up."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx

from tests.schema_v1 import V1_SCHEMA
from tests.server import start_server

# (text, position) in the order version 1 stored them: three appends raced twice.
STORED = [("a", 0), ("b", 1), ("c", 1), ("d", 2), ("e", 2), ("f", 2), ("g", 3)]


def _v1_database(path: Path, conversation_id: str) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
        db.execute("INSERT INTO oasis_schema_version (version) VALUES (1)")
        db.execute(
            "INSERT INTO conversations VALUES (?, 'anonymous', 1700000000, '{}', 0)",
            (conversation_id,),
        )
        for text, position in STORED:
            item = {
                "id": f"msg_{text}",
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": [{"type": "input_text", "text": text}],
            }
            db.execute(
                "INSERT INTO items (item_id, owner, conversation_id, role, position, created_at, "
                "data) VALUES (?, 'anonymous', ?, 'conversation', ?, 1700000000, ?)",
                (item["id"], conversation_id, position, json.dumps(item)),
            )


def test_version_1_duplicate_positions_are_repaired(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    conversation_id = "conv_from_v1"
    _v1_database(data_dir / "oasis.db", conversation_id)

    server = start_server(data_dir, config={"preload": []})
    try:
        with httpx.Client(base_url=server.api_url, timeout=60) as api:
            added = api.post(
                f"/conversations/{conversation_id}/items",
                json={"items": [{"role": "user", "content": "h"}]},
            )
            assert added.status_code == 200, added.text
            # Pages of two, each after the last item seen: every item once, in stored order.
            seen: list[str] = []
            after: str | None = None
            while True:
                params = {"order": "asc", "limit": 2, **({"after": after} if after else {})}
                page = api.get(f"/conversations/{conversation_id}/items", params=params).json()
                seen += [item["content"][0]["text"] for item in page["data"]]
                if not page["has_more"]:
                    break
                after = page["last_id"]
            assert seen == ["a", "b", "c", "d", "e", "f", "g", "h"]
    finally:
        server.stop()

    with sqlite3.connect(data_dir / "oasis.db") as db:
        positions = db.execute(
            "SELECT position FROM items WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        ).fetchall()
        assert [p for (p,) in positions] == list(range(8))
        counter = db.execute(
            "SELECT next_position FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        assert counter == (8,)
