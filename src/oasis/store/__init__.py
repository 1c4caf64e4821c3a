"""Durable state: responses, their items, conversations and background event logs.

SQLAlchemy 2 async Core on SQLite (WAL, under the data dir) or PostgreSQL (asyncpg); one
code path for both. Every query is scoped by ``owner`` (an HMAC of the API key, see
:mod:`oasis.owners`).
"""
