"""Owner ids are HMACs of API keys under a server secret, never bare hashes.

A data dir written before that (owner ids were ``key_`` + SHA-256 of the key) is made here
as the old server left it, with sqlite3 and the old schema; the real server then upgrades
it at start-up and must serve every old object to the same key, and to no other, while
the database file no longer holds the key's hash anywhere.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.schema_v1 import V1_SCHEMA
from tests.server import Server, start_server

KEY = "sk-from-before-the-upgrade"
DIGEST = hashlib.sha256(KEY.encode()).hexdigest()
LEGACY_OWNER = "key_" + DIGEST[:24]

CREATED = 1_767_225_600


def _message(item_id: str, text: str) -> str:
    content = [{"type": "input_text", "text": text}]
    item = {"id": item_id, "type": "message", "role": "user", "status": "completed"}
    return json.dumps({**item, "content": content})


def _old_data_dir(data_dir: Path) -> None:
    """A response with its input and a conversation with an item, owned by the old id."""
    data_dir.mkdir(parents=True)
    body = {
        "id": "resp_old",
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "model": "smollm2-135m-instruct",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "metadata": {},
    }
    with sqlite3.connect(data_dir / "oasis.db") as db:
        db.executescript(V1_SCHEMA)
        db.execute("INSERT INTO oasis_schema_version VALUES (1)")
        db.execute(
            "INSERT INTO responses VALUES (?, ?, ?, 'completed', 0, 0, NULL, NULL, ?, NULL, 0)",
            ("resp_old", LEGACY_OWNER, CREATED, json.dumps(body)),
        )
        db.execute(
            "INSERT INTO conversations VALUES ('conv_old', ?, ?, ?, 0)",
            (LEGACY_OWNER, CREATED, json.dumps({"topic": "old"})),
        )
        rows = [
            ("msg_in", "resp_old", None, "input", _message("msg_in", "asked before")),
            ("msg_conv", None, "conv_old", "conversation", _message("msg_conv", "said before")),
        ]
        for item_id, response_id, conversation_id, role, data in rows:
            db.execute(
                "INSERT INTO items (item_id, owner, response_id, conversation_id, role, "
                "position, created_at, data) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                (item_id, LEGACY_OWNER, response_id, conversation_id, role, CREATED, data),
            )
    db.close()


def _sdk(server: Server, key: str) -> OpenAI:
    return OpenAI(
        base_url=server.api_url, api_key=key, max_retries=0, _strict_response_validation=True
    )


def _reads_old_objects(server: Server) -> None:
    with _sdk(server, KEY) as sdk:
        assert sdk.responses.retrieve("resp_old").id == "resp_old"
        (asked,) = sdk.responses.input_items.list("resp_old").data
        assert asked.type == "message" and asked.content[0].text == "asked before"  # type: ignore[union-attr]
        assert sdk.conversations.retrieve("conv_old").metadata == {"topic": "old"}
        (said,) = sdk.conversations.items.list("conv_old").data
        assert said.type == "message" and said.content[0].text == "said before"  # type: ignore[union-attr]


def _owners(database: Path) -> set[str]:
    with sqlite3.connect(database) as db:
        found = {
            owner
            for table in ("responses", "items", "conversations")
            for (owner,) in db.execute(f"SELECT owner FROM {table}")  # noqa: S608 - fixed names
        }
    db.close()
    return found


def test_old_owner_ids_are_rekeyed_and_stay_readable(data_dir: Path) -> None:
    _old_data_dir(data_dir)
    server = start_server(data_dir, config={"preload": []})
    try:
        _reads_old_objects(server)
        with _sdk(server, "sk-someone-else") as other:
            with pytest.raises(openai.NotFoundError):
                other.conversations.retrieve("conv_old")
            with pytest.raises(openai.NotFoundError):
                other.responses.retrieve("resp_old")
    finally:
        server.stop()

    secret = data_dir / "owner_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    (owner,) = _owners(data_dir / "oasis.db")
    assert owner.startswith("own_") and owner != LEGACY_OWNER
    # Not in a row, an index or the free space of the file: a copy of it cannot be used to
    # test guessed keys against their hashes.
    for path in data_dir.glob("oasis.db*"):
        assert DIGEST[:24].encode() not in path.read_bytes(), path

    server = start_server(data_dir, config={"preload": []})  # the secret is kept
    try:
        _reads_old_objects(server)
    finally:
        server.stop()


def test_replicas_share_the_configured_secret(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    config = {"preload": [], "database_url": f"sqlite:///{database}"}
    shared = {"OASIS_OWNER_SECRET": "a-secret-every-replica-is-given"}

    first = start_server(tmp_path / "one", config=config, env=shared)
    try:
        with _sdk(first, KEY) as sdk:
            conversation = sdk.conversations.create(metadata={"by": "one"})
    finally:
        first.stop()
    assert not (tmp_path / "one" / "owner_secret").exists()  # the setting replaces the file

    second = start_server(tmp_path / "two", config=config, env=shared)
    try:
        with _sdk(second, KEY) as sdk:
            assert sdk.conversations.retrieve(conversation.id).metadata == {"by": "one"}
    finally:
        second.stop()

    alone = start_server(tmp_path / "three", config=config)  # a secret of its own
    try:
        with _sdk(alone, KEY) as sdk, pytest.raises(openai.NotFoundError):
            sdk.conversations.retrieve(conversation.id)
    finally:
        alone.stop()
