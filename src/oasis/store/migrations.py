"""A small versioned migration runner, run at start-up.

Each step moves the schema from version ``n-1`` to ``n`` and runs once, in order, inside
one transaction with the version bump. A new schema change is a new step appended to
:data:`STEPS` (never an edit of an old one); no step may depend on :mod:`oasis.store.tables`,
which describes only the newest schema. A step that needs the server's owner ids finds
them in ``conn.info[OWNER_IDS]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    column,
    inspect,
    select,
    table,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from oasis.owners import LEGACY_PREFIX, OwnerIds

log = logging.getLogger(__name__)

OWNER_IDS = "oasis.owner_ids"  # the server's OwnerIds, in conn.info while steps run

# The runner's own bookkeeping: one row, the version the schema is at.
_versions = MetaData()
_schema_version = Table(
    "oasis_schema_version", _versions, Column("version", Integer, primary_key=True)
)

# Schema version 1 exactly as it was released, frozen: later versions change it only
# through the steps below.
_V1 = MetaData()
Table(
    "responses",
    _V1,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("background", Boolean, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("previous_response_id", Text, nullable=True),
    Column("conversation_id", String(64), nullable=True),
    Column("body", JSON, nullable=False),
    Column("request", JSON, nullable=True),
    Column("deleted", Boolean, nullable=False),
    Index("ix_responses_owner_status", "owner", "status"),
)
Table(
    "items",
    _V1,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Text, nullable=False),
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
Table(
    "conversations",
    _V1,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("deleted", Boolean, nullable=False),
)
Table(
    "response_events",
    _V1,
    Column("response_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("type", String(96), nullable=False),
    Column("data", Text, nullable=False),
)


def _v1_initial(conn: Connection) -> None:
    _V1.create_all(conn)


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


def _v4_drop_unwritten_columns(conn: Connection) -> None:
    """Drop the ``deleted`` flags of responses and conversations: nothing ever set them.

    A delete removes the row, so every row ever stored has ``deleted`` false. Neither
    column is indexed, so SQLite (3.35 or newer) drops them in place, as PostgreSQL does.
    On PostgreSQL the item and previous-response ids also become unbounded ``TEXT``, as
    version 1 creates them since ids became unbounded (a no-op on a database created
    after that; SQLite does not enforce lengths).
    """
    conn.execute(text("ALTER TABLE responses DROP COLUMN deleted"))
    conn.execute(text("ALTER TABLE conversations DROP COLUMN deleted"))
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE items ALTER COLUMN item_id TYPE TEXT"))
        conn.execute(text("ALTER TABLE responses ALTER COLUMN previous_response_id TYPE TEXT"))


def _v7_keys_usage_limits(conn: Connection) -> None:
    """Projects, database API keys, usage records and rate-limit windows (new tables only).

    Spelled out here rather than taken from :mod:`oasis.store.tables`, which may move on.
    """
    step = MetaData()
    Table(
        "projects",
        step,
        Column("id", String(64), primary_key=True),
        Column("name", String(256), nullable=False, unique=True),
        Column("created_at", Integer, nullable=False),
        Column("rpm", Integer, nullable=True),
        Column("tpm", Integer, nullable=True),
        Column("max_tokens", Integer, nullable=True),
    )
    Table(
        "api_keys",
        step,
        Column("id", String(64), primary_key=True),
        Column("secret_hash", String(64), nullable=False, unique=True),
        Column("redacted", String(64), nullable=False),
        Column("name", String(256), nullable=True),
        Column("project_id", String(64), nullable=True),
        Column("admin", Boolean, nullable=False),
        Column("created_at", Integer, nullable=False),
        Column("expires_at", Integer, nullable=True),
        Column("revoked_at", Integer, nullable=True),
        Column("rpm", Integer, nullable=True),
        Column("tpm", Integer, nullable=True),
        Index("ix_api_keys_project", "project_id"),
    )
    Table(
        "usage_records",
        step,
        Column("pk", Integer, primary_key=True, autoincrement=True),
        Column("created_at", Integer, nullable=False),
        Column("owner", String(128), nullable=False),
        Column("project_id", String(64), nullable=True),
        Column("key_id", String(64), nullable=True),
        Column("endpoint", String(32), nullable=False),
        Column("model", String(256), nullable=False),
        Column("input_tokens", Integer, nullable=False),
        Column("cached_tokens", Integer, nullable=False),
        Column("output_tokens", Integer, nullable=False),
        Column("characters", Integer, nullable=False),
        Column("seconds", Float, nullable=False),
        Column("images", Integer, nullable=False),
        Column("tool_calls", Integer, nullable=False),
        Index("ix_usage_records_time", "created_at"),
    )
    Table(
        "rate_windows",
        step,
        Column("scope", String(160), primary_key=True),
        Column("window", Integer, primary_key=True),
        Column("requests", Integer, nullable=False),
        Column("tokens", Integer, nullable=False),
    )
    step.create_all(conn)


# The tables schema version 5 adds, frozen as released.
_V5 = MetaData()
Table(
    "files",
    _V5,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("expires_at", Integer, nullable=True),
    Column("bytes", BigInteger, nullable=False),
    Column("filename", Text, nullable=False),
    Column("purpose", String(32), nullable=False),
    Index("ix_files_owner_purpose", "owner", "purpose"),
    Index("ix_files_expires_at", "expires_at"),
)
Table(
    "uploads",
    _V5,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("expires_at", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("filename", Text, nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("mime_type", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("file_id", String(64), nullable=True),
    Column("file_expires_after", Integer, nullable=True),
    Index("ix_uploads_status_expires", "status", "expires_at"),
)
Table(
    "upload_parts",
    _V5,
    Column("id", String(64), primary_key=True),
    Column("upload_id", String(64), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Index("ix_upload_parts_upload", "upload_id"),
)


def _v5_files_and_uploads(conn: Connection) -> None:
    """The Files and Uploads APIs: file metadata, uploads and their parts (bytes are blobs)."""
    _V5.create_all(conn)


# The tables schema version 8 adds, frozen as released.
_V8 = MetaData()
Table(
    "batches",
    _V8,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("model", Text, nullable=True),
    Column("input_file_id", String(64), nullable=False),
    Column("completion_window", String(16), nullable=False),
    Column("expires_at", Integer, nullable=False),
    Column("metadata", JSON, nullable=True),
    Column("output_expires_after", Integer, nullable=True),
    Column("in_progress_at", Integer, nullable=True),
    Column("finalizing_at", Integer, nullable=True),
    Column("completed_at", Integer, nullable=True),
    Column("failed_at", Integer, nullable=True),
    Column("expired_at", Integer, nullable=True),
    Column("cancelling_at", Integer, nullable=True),
    Column("cancelled_at", Integer, nullable=True),
    Column("output_file_id", String(64), nullable=True),
    Column("error_file_id", String(64), nullable=True),
    Column("errors", JSON, nullable=True),
    Index("ix_batches_owner", "owner"),
    Index("ix_batches_status", "status"),
)
Table(
    "batch_lines",
    _V8,
    Column("batch_id", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("custom_id", Text, nullable=False),
    Column("request", JSON, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("failed", Boolean, nullable=False),
    Column("result", JSON, nullable=True),
    Index("ix_batch_lines_done", "batch_id", "done", "line"),
)


def _v8_batches(conn: Connection) -> None:
    """The Batch API: batches and the per-line progress that a restart resumes from."""
    _V8.create_all(conn)


def _v9_batch_line_usage(conn: Connection) -> None:
    """Each batch line's token counts, summed into the batch's ``usage`` as it runs.

    Lines finished before this version count as zero: their usage is in their stored
    output, but a batch that straddles an upgrade is rare enough not to re-read it."""
    columns = {column["name"] for column in inspect(conn).get_columns("batch_lines")}
    for name in ("input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens"):
        if name not in columns:
            conn.execute(
                text(f"ALTER TABLE batch_lines ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")
            )


# Schema version 6 as released: vector stores, their files, file batches and chunks.
_V6 = MetaData()
Table(
    "vector_stores",
    _V6,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("expires_after", JSON, nullable=True),
    Column("last_active_at", Integer, nullable=True),
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Index("ix_vector_stores_owner", "owner", "pk"),
)
Table(
    "vector_store_files",
    _V6,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("vector_store_id", String(64), nullable=False),
    Column("file_id", String(64), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("filename", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("last_error", JSON, nullable=True),
    Column("chunking", JSON, nullable=False),
    Column("attributes", JSON, nullable=True),
    Column("usage_bytes", Integer, nullable=False, server_default=text("0")),
    Column("batch_id", String(64), nullable=True),
    Index("ux_vector_store_files_file", "vector_store_id", "file_id", unique=True),
    Index("ix_vector_store_files_status", "vector_store_id", "status"),
    Index("ix_vector_store_files_batch", "batch_id"),
    Index("ix_vector_store_files_owner_file", "owner", "file_id"),
)
Table(
    "vector_store_file_batches",
    _V6,
    Column("id", String(64), primary_key=True),
    Column("vector_store_id", String(64), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("status", String(16), nullable=False),
)
Table(
    "vector_store_chunks",
    _V6,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("vector_store_id", String(64), nullable=False),
    Column("file_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("embedding", LargeBinary, nullable=False),
    Index("ix_vector_store_chunks_file", "vector_store_id", "file_id"),
)


def _v6_vector_stores(conn: Connection) -> None:
    """Vector stores, and keyword search over their chunks: an FTS5 table on SQLite, a
    GIN index over the chunks' English text vectors on PostgreSQL."""
    _V6.create_all(conn)
    if conn.dialect.name == "sqlite":
        conn.execute(
            text(
                "CREATE VIRTUAL TABLE IF NOT EXISTS vector_store_chunks_fts "
                "USING fts5(text, tokenize='porter unicode61')"
            )
        )
    elif conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "CREATE INDEX IF NOT EXISTS ix_vector_store_chunks_tsv ON vector_store_chunks "
                "USING gin (to_tsvector('english', text))"
            )
        )


# Schema version 10 as released: containers and their files.
_V10 = MetaData()
Table(
    "containers",
    _V10,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("last_active_at", Integer, nullable=False),
    Column("expires_minutes", Integer, nullable=False),
    Column("memory_limit", String(8), nullable=False),
    Index("ix_containers_owner", "owner", "pk"),
    Index("ix_containers_active", "last_active_at"),
)
Table(
    "container_files",
    _V10,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("container_id", String(64), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("path", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Index("ux_container_files_path", "container_id", "path", unique=True),
)


def _v10_containers(conn: Connection) -> None:
    """The Containers API: containers (owned, expiring when idle) and their files."""
    _V10.create_all(conn)


# Schema version 11 as released: stored chat completions and their request messages.
_V11 = MetaData()
Table(
    "chat_completions",
    _V11,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("model", Text, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("body", JSON, nullable=False),
    Index("ix_chat_completions_owner", "owner", "pk"),
)
Table(
    "chat_completion_messages",
    _V11,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("completion_id", String(64), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("position", Integer, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_chat_completion_messages_completion", "completion_id", "position"),
)


def _v11_chat_completions(conn: Connection) -> None:
    """Stored Chat Completions (``store: true``) and the messages each was asked with."""
    _V11.create_all(conn)


def _v12_job_leases(conn: Connection) -> None:
    """Leases on background work, so replicas on one database claim each job once."""
    step = MetaData()
    Table(
        "leases",
        step,
        Column("kind", String(16), primary_key=True),
        Column("job_id", String(160), primary_key=True),
        Column("holder", String(128), nullable=False),
        Column("expires_at", Float, nullable=False),
        Column("stop", Boolean, nullable=False),
        Index("ix_leases_holder", "holder"),
    )
    step.create_all(conn)


def _v13_lease_generations(conn: Connection) -> None:
    """Each lease's generation, bumped by every claim: a fencing token, so a replica that
    lost a lease (it stalled past it and another took the job over) cannot write for it."""
    columns = {column["name"] for column in inspect(conn).get_columns("leases")}
    if "generation" not in columns:
        conn.execute(text("ALTER TABLE leases ADD COLUMN generation INTEGER NOT NULL DEFAULT 0"))


def _v14_usage_bytes_and_work_callers(conn: Connection) -> None:
    """Stored bytes on usage rows (vector stores), and who asked for background work (so
    the process that finishes it, after a restart or on another replica, records its
    usage for that key)."""
    columns = {column["name"] for column in inspect(conn).get_columns("usage_records")}
    if "bytes" not in columns:
        conn.execute(text("ALTER TABLE usage_records ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0"))
    step = MetaData()
    Table(
        "work_callers",
        step,
        Column("kind", String(16), primary_key=True),
        Column("work_id", String(64), primary_key=True),
        Column("project_id", String(64), nullable=True),
        Column("key_id", String(64), nullable=True),
    )
    step.create_all(conn)


def _v15_drop_database_keyword_search(conn: Connection) -> None:
    """Keyword ranking moved into memory (BM25 with FTS5's tokenizer, on both databases):
    nothing reads the FTS5 table or the GIN index of step 6 any more, and keeping them
    cost every chunk write an index update."""
    if conn.dialect.name == "sqlite":
        # Dropping an FTS5 table drops its shadow tables with it.
        conn.execute(text("DROP TABLE IF EXISTS vector_store_chunks_fts"))
    elif conn.dialect.name == "postgresql":
        conn.execute(text("DROP INDEX IF EXISTS ix_vector_store_chunks_tsv"))


STEPS: list[Callable[[Connection], None]] = [
    _v1_initial,
    _v2_conversation_positions,
    _v3_keyed_owners,
    _v4_drop_unwritten_columns,
    _v5_files_and_uploads,
    _v6_vector_stores,
    _v7_keys_usage_limits,
    _v8_batches,
    _v9_batch_line_usage,
    _v10_containers,
    _v11_chat_completions,
    _v12_job_leases,
    _v13_lease_generations,
    _v14_usage_bytes_and_work_callers,
    _v15_drop_database_keyword_search,
]


def _current_version(conn: Connection) -> int:
    if not inspect(conn).has_table(_schema_version.name):
        _schema_version.create(conn)
        return 0
    version = conn.execute(select(_schema_version.c.version)).scalar()
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
        conn.execute(_schema_version.delete())
        conn.execute(_schema_version.insert().values(version=number))
        version = number
    return version


# The PostgreSQL advisory lock that replicas starting together take around migrating
# (any fixed 64-bit number; this one spells "oasis" in ASCII).
MIGRATION_LOCK = 0x6F61736973


async def migrate(engine: AsyncEngine, owner_ids: OwnerIds) -> int:
    """Bring the database to the newest schema; returns the version it is at.

    On PostgreSQL, replicas starting at once queue on an advisory lock held until the
    migrating transaction ends: the first runs the steps, the others then find the schema
    current and run none. (SQLite serializes writers by itself.)
    """
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        return await conn.run_sync(_migrate, owner_ids)
