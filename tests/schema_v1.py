"""Schema version 1 as the server created it (SQLAlchemy's SQLite DDL for its tables):
what tests build by hand to stand for a database written by an old server."""

V1_SCHEMA = """
CREATE TABLE oasis_schema_version (version INTEGER NOT NULL, PRIMARY KEY (version));
CREATE TABLE responses (
    id VARCHAR(64) NOT NULL, owner VARCHAR(128) NOT NULL, created_at INTEGER NOT NULL,
    status VARCHAR(32) NOT NULL, background BOOLEAN NOT NULL, stream BOOLEAN NOT NULL,
    previous_response_id TEXT, conversation_id VARCHAR(64), body JSON NOT NULL,
    request JSON, deleted BOOLEAN NOT NULL, PRIMARY KEY (id)
);
CREATE INDEX ix_responses_owner_status ON responses (owner, status);
CREATE TABLE items (
    pk INTEGER NOT NULL, item_id TEXT NOT NULL, owner VARCHAR(128) NOT NULL,
    response_id VARCHAR(64), conversation_id VARCHAR(64), role VARCHAR(16) NOT NULL,
    position INTEGER NOT NULL, created_at INTEGER NOT NULL, data JSON NOT NULL,
    PRIMARY KEY (pk)
);
CREATE INDEX ix_items_response ON items (response_id, role, position);
CREATE INDEX ix_items_conversation ON items (conversation_id, position);
CREATE INDEX ix_items_owner_item ON items (owner, item_id);
CREATE TABLE conversations (
    id VARCHAR(64) NOT NULL, owner VARCHAR(128) NOT NULL, created_at INTEGER NOT NULL,
    metadata JSON NOT NULL, deleted BOOLEAN NOT NULL, PRIMARY KEY (id)
);
CREATE TABLE response_events (
    response_id VARCHAR(64) NOT NULL, seq INTEGER NOT NULL, type VARCHAR(96) NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (response_id, seq)
);
"""
