"""The tables as the newest schema version has them, for queries.

A change here is also a new step in :mod:`oasis.store.migrations`, which never uses these
definitions; ``tests/test_schema.py`` checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, Integer, MetaData, String, Table, Text, text

metadata = MetaData()

# One row per stored Response. ``body`` is the latest Response snapshot as the API returns
# it; ``request`` is the validated create request, kept so a background job is explainable.
responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("background", Boolean, nullable=False, default=False),
    Column("stream", Boolean, nullable=False, default=False),
    Column("previous_response_id", Text, nullable=True),
    Column("conversation_id", String(64), nullable=True),
    Column("body", JSON, nullable=False),
    Column("request", JSON, nullable=True),
    Index("ix_responses_owner_status", "owner", "status"),
)

# Items of responses (``role`` input/output) and of conversations (``role`` conversation).
# An item id can appear in several rows: a chained response stores its whole context.
items = Table(
    "items",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Text, nullable=False),  # client-given ids have no length limit
    Column("owner", String(128), nullable=False),
    Column("response_id", String(64), nullable=True),
    Column("conversation_id", String(64), nullable=True),
    Column("role", String(16), nullable=False),
    Column("position", Integer, nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_items_response", "response_id", "role", "position"),
    Index("ix_items_conversation", "conversation_id", "position"),
    Index("ix_items_owner_item", "owner", "item_id"),
)

# A conversation's items are totally ordered: no two share a position (schema version 2).
conversation_positions = Index(
    "ux_items_conversation_position",
    items.c.conversation_id,
    items.c.position,
    unique=True,
    sqlite_where=items.c.role == "conversation",
    postgresql_where=items.c.role == "conversation",
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("metadata", JSON, nullable=False),
    # The position the next appended item takes; bumped in the appending transaction.
    Column("next_position", Integer, nullable=False, default=0, server_default=text("0")),
)

# The event log of a background streamed response, for ``GET ?stream=true`` replay.
response_events = Table(
    "response_events",
    metadata,
    Column("response_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("type", String(96), nullable=False),
    Column("data", Text, nullable=False),
)
