"""The tables as the newest schema version has them, for queries.

A change here is also a new step in :mod:`oasis.store.migrations`, which never uses these
definitions; ``tests/test_schema.py`` checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

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

# Background work claimed by one replica: a response job, a batch, a file being indexed.
# The holder renews ``expires_at`` while it runs; another replica takes over an expired
# lease. ``stop`` asks the holder to stop (a cancel that arrived through another replica).
leases = Table(
    "leases",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("job_id", String(160), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("stop", Boolean, nullable=False),
    # Version 13: bumped by every claim; the fencing token of the holder's writes.
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Index("ix_leases_holder", "holder"),
)

# Projects own what their keys store: a project's id is the owner id of its objects.
projects = Table(
    "projects",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("created_at", Integer, nullable=False),
    Column("rpm", Integer, nullable=True),  # requests per minute, all its keys together
    Column("tpm", Integer, nullable=True),  # tokens per minute, all its keys together
    Column("max_tokens", Integer, nullable=True),  # ceiling on one request's output tokens
)

# API keys issued by ``oasis keys create``: only a SHA-256 of the secret is kept. Admin
# keys belong to no project and may only read the organization endpoints.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("redacted", String(64), nullable=False),
    Column("name", String(256), nullable=True),
    Column("project_id", String(64), nullable=True),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created_at", Integer, nullable=False),
    Column("expires_at", Integer, nullable=True),
    Column("revoked_at", Integer, nullable=True),
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Index("ix_api_keys_project", "project_id"),
)

# One row per request that used a model: what it cost, and whose it was.
usage_records = Table(
    "usage_records",
    metadata,
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
    # Version 13: a change in stored bytes (vector stores), summed over time for a level.
    Column("bytes", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_usage_records_time", "created_at"),
)

# Who asked for a piece of background work (version 13): a batch's lines record their
# usage under this key and project in whichever process finishes them.
work_callers = Table(
    "work_callers",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("work_id", String(64), primary_key=True),
    Column("project_id", String(64), nullable=True),
    Column("key_id", String(64), nullable=True),
)

# Requests and tokens counted per limited scope (a key, a project, a config key's owner)
# and one-minute window, so every replica on one database counts against one budget.
rate_windows = Table(
    "rate_windows",
    metadata,
    Column("scope", String(160), primary_key=True),
    Column("window", Integer, primary_key=True),  # the minute's start, Unix seconds
    Column("requests", Integer, nullable=False),
    Column("tokens", Integer, nullable=False),
)

# Uploaded and server-made files (schema version 5). The bytes are a blob named by ``id`` in
# the blob store's ``files`` section; ``pk`` orders lists (creation order). A file past
# ``expires_at`` is gone for every reader even before the sweep removes its row and blob.
files = Table(
    "files",
    metadata,
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

# Uploads in parts (schema version 5): ``status`` pending, completed, cancelled or expired;
# ``file_id`` is the File a completed upload became; ``file_expires_after`` the seconds
# the client asked that File to live.
uploads = Table(
    "uploads",
    metadata,
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

# The parts of pending uploads; each one's bytes are a blob named by ``id`` in the
# ``upload_parts`` section. Rows and blobs go when their upload completes, is cancelled
# or expires.
upload_parts = Table(
    "upload_parts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("upload_id", String(64), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Index("ix_upload_parts_upload", "upload_id"),
)

# Batches (schema version 8): one row per batch; ``status`` moves validating → in_progress →
# finalizing → completed (or failed, cancelling → cancelled, expired), each step stamping
# its ``<status>_at`` column. ``errors`` is the validation error list of a failed batch.
batches = Table(
    "batches",
    metadata,
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

# The lines of a batch that passed validation (schema version 8): the request as the input
# file had it, and once run (``done``) the output line, written in the same transaction
# that marks it done, so a restart runs exactly the lines not yet done.
batch_lines = Table(
    "batch_lines",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("custom_id", Text, nullable=False),
    Column("request", JSON, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("failed", Boolean, nullable=False),
    Column("result", JSON, nullable=True),
    # Version 9: the line's token counts, summed into the batch's `usage`.
    Column("input_tokens", Integer, nullable=False, server_default=text("0")),
    Column("cached_tokens", Integer, nullable=False, server_default=text("0")),
    Column("output_tokens", Integer, nullable=False, server_default=text("0")),
    Column("reasoning_tokens", Integer, nullable=False, server_default=text("0")),
    Index("ix_batch_lines_done", "batch_id", "done", "line"),
)

# Vector stores (schema version 6). Counts, status and usage are computed from the file
# rows, never kept as counters; ``generation`` is bumped whenever the store's chunks
# change, so every process knows when its cached vectors are stale.
vector_stores = Table(
    "vector_stores",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("expires_after", JSON, nullable=True),
    Column("last_active_at", Integer, nullable=True),
    Column("generation", Integer, nullable=False, default=0, server_default=text("0")),
    Index("ix_vector_stores_owner", "owner", "pk"),
)

# One row per file attached to a store; ``id`` on the wire is the File id.
vector_store_files = Table(
    "vector_store_files",
    metadata,
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
    Column("usage_bytes", Integer, nullable=False, default=0, server_default=text("0")),
    Column("batch_id", String(64), nullable=True),
    Index("ux_vector_store_files_file", "vector_store_id", "file_id", unique=True),
    Index("ix_vector_store_files_status", "vector_store_id", "status"),
    Index("ix_vector_store_files_batch", "batch_id"),
    Index("ix_vector_store_files_owner_file", "owner", "file_id"),
)

vector_store_file_batches = Table(
    "vector_store_file_batches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("vector_store_id", String(64), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("status", String(16), nullable=False),
)

# The chunks of completed files: text for keyword search and results, and the
# embedding as little-endian float32 bytes. Both are ranked in memory
# (:mod:`oasis.retrieval`), so no full-text index is kept here (schema version 15).
vector_store_chunks = Table(
    "vector_store_chunks",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("vector_store_id", String(64), nullable=False),
    Column("file_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("embedding", LargeBinary, nullable=False),
    Index("ix_vector_store_chunks_file", "vector_store_id", "file_id"),
)

# Containers (schema version 10): the sandboxes of code_interpreter. A container expires
# ``expires_minutes`` after ``last_active_at``; its files' bytes live in its working
# directory under the data dir (the sandbox sees them at /mnt/data).
containers = Table(
    "containers",
    metadata,
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

container_files = Table(
    "container_files",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("container_id", String(64), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("path", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Index("ux_container_files_path", "container_id", "path", unique=True),
)

# Chat completions created with ``store: true``: the completion as returned (``body``, its
# ``metadata`` kept apart so an update rewrites one column), and the request's messages.
chat_completions = Table(
    "chat_completions",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("model", Text, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("body", JSON, nullable=False),
    Index("ix_chat_completions_owner", "owner", "pk"),
)
chat_completion_messages = Table(
    "chat_completion_messages",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("completion_id", String(64), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("position", Integer, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_chat_completion_messages_completion", "completion_id", "position"),
)
