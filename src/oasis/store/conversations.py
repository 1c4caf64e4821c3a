"""Conversations: durable item lists that responses read from and append to."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.store.items import ItemPage, insert_items, item_page
from oasis.store.owned import OwnedRows, each
from oasis.store.pagination import PageQuery
from oasis.store.tables import conversations, items
from oasis.types import Item


@dataclass(frozen=True)
class StoredConversation:
    id: str
    created_at: int
    metadata: dict[str, str]


def _stored(row: Row[Any]) -> StoredConversation:
    return StoredConversation(row.id, row.created_at, row.metadata)


_COLUMNS = (conversations.c.id, conversations.c.created_at, conversations.c.metadata)


def _items_of(owner: str, conversation_id: str) -> ColumnElement[bool]:
    return and_(
        items.c.conversation_id == conversation_id,
        items.c.owner == owner,
        items.c.role == "conversation",
    )


class ConversationRepository:
    """Conversations and their items, per owner."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.rows = OwnedRows(engine, conversations, each(_stored), columns=_COLUMNS)

    async def create(
        self, owner: str, conversation_id: str, metadata: dict[str, str], initial: list[Item]
    ) -> StoredConversation:
        created = int(time.time())
        async with self.engine.begin() as conn:
            await conn.execute(
                conversations.insert().values(
                    id=conversation_id,
                    owner=owner,
                    created_at=created,
                    metadata=metadata,
                )
            )
            await self.append_in(conn, owner, conversation_id, initial)
        return StoredConversation(conversation_id, created, metadata)

    async def get(self, owner: str, conversation_id: str) -> StoredConversation | None:
        return await self.rows.get(owner, conversation_id)

    async def update(
        self, owner: str, conversation_id: str, metadata: dict[str, str]
    ) -> StoredConversation | None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(conversations)
                .where(self.rows.mine(owner, conversations.c.id == conversation_id))
                .values(metadata=metadata)
            )
        return await self.get(owner, conversation_id)

    async def delete(self, owner: str, conversation_id: str) -> bool:
        """Delete a conversation and its items; False if the owner has no such one."""

        async def cascade(conn: AsyncConnection) -> None:
            await conn.execute(
                delete(items).where(
                    and_(items.c.conversation_id == conversation_id, items.c.owner == owner)
                )
            )

        return await self.rows.delete(owner, conversation_id, cascade=cascade)

    async def append(self, owner: str, conversation_id: str, entries: list[Item]) -> bool:
        """Append items to a conversation; False if it does not exist (any more)."""
        async with self.engine.begin() as conn:
            return await self.append_in(conn, owner, conversation_id, entries)

    @staticmethod
    async def append_in(
        conn: AsyncConnection, owner: str, conversation_id: str, entries: list[Item]
    ) -> bool:
        """Add items at the end of a conversation, in this transaction; False if it is gone.

        The positions come from the conversation's counter, bumped by an UPDATE in the same
        transaction: the writer lock (SQLite) or the row lock (PostgreSQL) it takes orders
        concurrent appends, so no two items share a position and none is placed before
        one that was already acknowledged.
        """
        if not entries:
            return True
        end = (
            await conn.execute(
                update(conversations)
                .where(and_(conversations.c.id == conversation_id, conversations.c.owner == owner))
                .values(next_position=conversations.c.next_position + len(entries))
                .returning(conversations.c.next_position)
            )
        ).scalar()
        if end is None:
            return False
        await insert_items(
            conn,
            owner,
            entries,
            start=int(end) - len(entries),
            conversation_id=conversation_id,
            role="conversation",
        )
        return True

    async def items(self, owner: str, conversation_id: str) -> list[Item]:
        """Every item of a conversation, oldest first (the context of its next turn)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(items.c.data)
                .where(_items_of(owner, conversation_id))
                .order_by(items.c.position)
            )
            return [r.data for r in rows]

    async def page(self, owner: str, conversation_id: str, query: PageQuery) -> ItemPage:
        async with self.engine.connect() as conn:
            return await item_page(conn, _items_of(owner, conversation_id), query)

    async def item(self, owner: str, conversation_id: str, item_id: str) -> Item | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(items.c.data).where(
                        and_(_items_of(owner, conversation_id), items.c.item_id == item_id)
                    )
                )
            ).first()
        return None if row is None else dict(row.data)

    async def delete_item(self, owner: str, conversation_id: str, item_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(items).where(
                    and_(_items_of(owner, conversation_id), items.c.item_id == item_id)
                )
            )
        return bool(result.rowcount)
