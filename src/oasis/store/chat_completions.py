"""Stored chat completions, per owner: the completion, its metadata and its request messages.

A ``metadata`` filter is part of the page's one query: on PostgreSQL each pair compares
``metadata ->> key``; on SQLite it looks the pair up in ``json_each(metadata)``, because
SQLite before 3.45 matches a JSON path against keys as they are stored, escapes and all, so
a key holding a quote, a backslash or a non-ASCII letter would never match by path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, exists, func, update
from sqlalchemy.ext.asyncio import AsyncEngine

from oasis.store.owned import OwnedRows, each
from oasis.store.pagination import Page, PageQuery, fetch_page
from oasis.store.tables import chat_completion_messages as messages
from oasis.store.tables import chat_completions as completions


@dataclass(frozen=True)
class StoredChatCompletion:
    """A completion as it was returned (``body``) and its metadata as it is now."""

    body: dict[str, Any]
    metadata: dict[str, str]


_COLUMNS = [completions.c.body, completions.c.metadata]


def _stored(row: Row[Any]) -> StoredChatCompletion:
    return StoredChatCompletion(row.body, row.metadata)


class ChatCompletionRepository:
    """Rows of ``chat_completions`` and ``chat_completion_messages``, each seen only by
    its owner."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.rows = OwnedRows(engine, completions, each(_stored), columns=_COLUMNS)

    async def insert(
        self,
        owner: str,
        body: dict[str, Any],
        metadata: dict[str, str],
        request_messages: list[dict[str, Any]],
    ) -> None:
        """Store a completion and its request messages (each with its ``id``), together."""
        async with self.engine.begin() as conn:
            await conn.execute(
                completions.insert().values(
                    id=body["id"],
                    owner=owner,
                    created_at=int(body["created"]),
                    model=body["model"],
                    metadata=metadata,
                    body=body,
                )
            )
            if request_messages:
                await conn.execute(
                    messages.insert(),
                    [
                        {
                            "completion_id": body["id"],
                            "owner": owner,
                            "position": i,
                            "message_id": message["id"],
                            "data": message,
                        }
                        for i, message in enumerate(request_messages)
                    ],
                )

    async def get(self, owner: str, completion_id: str) -> StoredChatCompletion | None:
        return await self.rows.get(owner, completion_id)

    async def page(
        self, owner: str, query: PageQuery, *, model: str | None, metadata: dict[str, str]
    ) -> Page[StoredChatCompletion]:
        """The owner's completions in creation order, narrowed to ``model`` and to those
        whose metadata holds every pair of ``metadata``."""
        pairs = [self._has_pair(key, value) for key, value in metadata.items()]
        return await self.rows.page(owner, query, *pairs, model=model)

    def _has_pair(self, key: str, value: str) -> ColumnElement[bool]:
        """The completion's metadata maps ``key`` to ``value``."""
        if self.engine.dialect.name == "sqlite":
            pairs = func.json_each(completions.c.metadata).table_valued("key", "value")
            return exists().where(and_(pairs.c.key == key, pairs.c.value == value))
        member: ColumnElement[str] = completions.c.metadata[key].as_string()
        return member == value

    async def set_metadata(
        self, owner: str, completion_id: str, metadata: dict[str, str]
    ) -> StoredChatCompletion | None:
        """Replace a completion's metadata; the completion as it is now, or None."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(completions)
                .where(and_(completions.c.owner == owner, completions.c.id == completion_id))
                .values(metadata=metadata)
                .returning(completions.c.body, completions.c.metadata)
            )
            row = result.first()
        return None if row is None else _stored(row)

    async def delete(self, owner: str, completion_id: str) -> bool:
        """Remove a completion and its messages; False if the owner has no such one."""
        return await self.rows.delete(
            owner,
            completion_id,
            cascade=lambda conn: conn.execute(
                delete(messages).where(
                    and_(messages.c.owner == owner, messages.c.completion_id == completion_id)
                )
            ),
        )

    async def messages(
        self, owner: str, completion_id: str, query: PageQuery
    ) -> Page[dict[str, Any]]:
        """A page of a completion's request messages, in the order they were sent."""
        where = and_(messages.c.owner == owner, messages.c.completion_id == completion_id)
        async with self.engine.connect() as conn:
            page = await fetch_page(
                conn,
                [messages.c.data],
                where,
                key=messages.c.position,
                cursor=messages.c.message_id,
                after=query.after,
                order=query.order,
                limit=query.limit,
            )
        return Page([dict(row.data) for row in page.data], page.has_more)
