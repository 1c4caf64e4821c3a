"""Queries. Every method takes ``owner`` and never returns another owner's rows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.store.tables import conversations, items, response_events, responses

Item = dict[str, Any]
UNFINISHED = ("queued", "in_progress")


@dataclass(frozen=True)
class StoredResponse:
    id: str
    owner: str
    status: str
    background: bool
    stream: bool
    body: dict[str, Any]


@dataclass(frozen=True)
class StoredConversation:
    id: str
    created_at: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class ItemPage:
    data: list[Item]
    has_more: bool


def _item_rows(
    owner: str, entries: list[Item], *, start: int = 0, **where: Any
) -> list[dict[str, Any]]:
    now = int(time.time())
    return [
        {
            "item_id": str(entry.get("id", "")),
            "owner": owner,
            "position": start + i,
            "created_at": now,
            "data": entry,
            **where,
        }
        for i, entry in enumerate(entries)
    ]


class Store:
    """Responses, items, conversations and event logs on one async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def close(self) -> None:
        await self.engine.dispose()

    # -- responses -------------------------------------------------------------------

    async def insert_response(
        self,
        owner: str,
        body: dict[str, Any],
        *,
        inputs: list[Item],
        stream: bool,
        request: dict[str, Any] | None = None,
        outputs: list[Item] | None = None,
        conversation_append: list[Item] | None = None,
    ) -> None:
        """Store a new response with its context (input items), and outputs when final."""
        conversation = body.get("conversation") or {}
        async with self.engine.begin() as conn:
            await conn.execute(
                responses.insert().values(
                    id=body["id"],
                    owner=owner,
                    created_at=int(body["created_at"]),
                    status=body["status"],
                    background=bool(body.get("background")),
                    stream=stream,
                    previous_response_id=body.get("previous_response_id"),
                    conversation_id=conversation.get("id"),
                    body=body,
                    request=request,
                    deleted=False,
                )
            )
            rows = _item_rows(owner, inputs, response_id=body["id"], role="input")
            rows += _item_rows(owner, outputs or [], response_id=body["id"], role="output")
            if rows:
                await conn.execute(items.insert(), rows)
            if conversation_append and conversation.get("id"):
                await self._append_conversation(
                    conn, owner, conversation["id"], conversation_append
                )

    async def finish_response(
        self,
        owner: str,
        body: dict[str, Any],
        *,
        outputs: list[Item],
        conversation_append: list[Item] | None = None,
    ) -> bool:
        """Record the end of a response stored earlier (background): once.

        The final snapshot, the output items and the turn added to the conversation are
        one transaction; nothing is written (False) if the response has already ended or
        is gone.
        """
        conversation = body.get("conversation") or {}
        async with self.engine.begin() as conn:
            if not await self._update_unfinished(conn, owner, body):
                return False
            await conn.execute(
                delete(items).where(
                    and_(items.c.response_id == body["id"], items.c.role == "output")
                )
            )
            rows = _item_rows(owner, outputs, response_id=body["id"], role="output")
            if rows:
                await conn.execute(items.insert(), rows)
            if conversation_append and conversation.get("id"):
                await self._append_conversation(
                    conn, owner, conversation["id"], conversation_append
                )
        return True

    async def update_snapshot(self, owner: str, body: dict[str, Any]) -> bool:
        """Write the snapshot of a response that is still unfinished; False if none is.

        A response that has ended (or is deleted) keeps its final state: whoever records
        an end first wins, and nobody rewrites it.
        """
        async with self.engine.begin() as conn:
            return await self._update_unfinished(conn, owner, body)

    @staticmethod
    async def _update_unfinished(conn: AsyncConnection, owner: str, body: dict[str, Any]) -> bool:
        result = await conn.execute(
            update(responses)
            .where(
                and_(
                    responses.c.id == body["id"],
                    responses.c.owner == owner,
                    responses.c.status.in_(UNFINISHED),
                )
            )
            .values(status=body["status"], body=body)
        )
        return bool(result.rowcount)

    async def get_response(self, owner: str, response_id: str) -> StoredResponse | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        responses.c.id,
                        responses.c.owner,
                        responses.c.status,
                        responses.c.background,
                        responses.c.stream,
                        responses.c.body,
                    ).where(
                        and_(
                            responses.c.id == response_id,
                            responses.c.owner == owner,
                            responses.c.deleted.is_(False),
                        )
                    )
                )
            ).first()
        if row is None:
            return None
        return StoredResponse(row.id, row.owner, row.status, row.background, row.stream, row.body)

    async def delete_response(self, owner: str, response_id: str) -> bool:
        """Delete a response and its own rows. Chained descendants keep their copies."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(responses).where(
                    and_(responses.c.id == response_id, responses.c.owner == owner)
                )
            )
            if not result.rowcount:
                return False
            await conn.execute(
                delete(items).where(
                    and_(items.c.response_id == response_id, items.c.owner == owner)
                )
            )
            await conn.execute(
                delete(response_events).where(response_events.c.response_id == response_id)
            )
        return True

    async def context_of(self, owner: str, response_id: str) -> list[Item]:
        """A response's whole context then its output: what a chained turn continues."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(items.c.data)
                .where(and_(items.c.response_id == response_id, items.c.owner == owner))
                .order_by(items.c.role, items.c.position)  # "input" sorts before "output"
            )
            return [r.data for r in rows]

    async def response_items(
        self, owner: str, response_id: str, *, role: str, order: str, after: str | None, limit: int
    ) -> ItemPage:
        where = and_(
            items.c.response_id == response_id, items.c.owner == owner, items.c.role == role
        )
        return await self._page(where, order=order, after=after, limit=limit)

    async def find_item(self, owner: str, item_id: str) -> Item | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(items.c.data)
                    .where(and_(items.c.owner == owner, items.c.item_id == item_id))
                    .limit(1)
                )
            ).first()
        return None if row is None else dict(row.data)

    async def unfinished(self) -> list[StoredResponse]:
        """Responses left queued or in progress (by a crash): for recovery at start-up."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    responses.c.id,
                    responses.c.owner,
                    responses.c.status,
                    responses.c.background,
                    responses.c.stream,
                    responses.c.body,
                ).where(responses.c.status.in_(UNFINISHED))
            )
            return [
                StoredResponse(r.id, r.owner, r.status, r.background, r.stream, r.body)
                for r in rows
            ]

    # -- event logs -------------------------------------------------------------------

    async def append_events(self, response_id: str, events: list[tuple[int, str, str]]) -> None:
        if not events:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                response_events.insert(),
                [
                    {"response_id": response_id, "seq": seq, "type": kind, "data": data}
                    for seq, kind, data in events
                ],
            )

    async def events(self, response_id: str, after: int) -> list[tuple[int, str, str]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(response_events.c.seq, response_events.c.type, response_events.c.data)
                .where(
                    and_(
                        response_events.c.response_id == response_id, response_events.c.seq > after
                    )
                )
                .order_by(response_events.c.seq)
            )
            return [(r.seq, r.type, r.data) for r in rows]

    async def last_event_seq(self, response_id: str) -> int:
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    select(func.max(response_events.c.seq)).where(
                        response_events.c.response_id == response_id
                    )
                )
            ).scalar()
        return -1 if value is None else int(value)

    # -- conversations ----------------------------------------------------------------

    async def create_conversation(
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
                    deleted=False,
                )
            )
            if initial:
                await self._append_conversation(conn, owner, conversation_id, initial)
        return StoredConversation(conversation_id, created, metadata)

    async def get_conversation(self, owner: str, conversation_id: str) -> StoredConversation | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        conversations.c.id, conversations.c.created_at, conversations.c.metadata
                    ).where(
                        and_(
                            conversations.c.id == conversation_id,
                            conversations.c.owner == owner,
                            conversations.c.deleted.is_(False),
                        )
                    )
                )
            ).first()
        return None if row is None else StoredConversation(row.id, row.created_at, row.metadata)

    async def update_conversation(
        self, owner: str, conversation_id: str, metadata: dict[str, str]
    ) -> StoredConversation | None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(conversations)
                .where(and_(conversations.c.id == conversation_id, conversations.c.owner == owner))
                .values(metadata=metadata)
            )
        return await self.get_conversation(owner, conversation_id)

    async def delete_conversation(self, owner: str, conversation_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(conversations).where(
                    and_(conversations.c.id == conversation_id, conversations.c.owner == owner)
                )
            )
            if not result.rowcount:
                return False
            await conn.execute(
                delete(items).where(
                    and_(items.c.conversation_id == conversation_id, items.c.owner == owner)
                )
            )
        return True

    async def add_conversation_items(
        self, owner: str, conversation_id: str, entries: list[Item]
    ) -> bool:
        """Append items to a conversation; False if it does not exist (any more)."""
        async with self.engine.begin() as conn:
            return await self._append_conversation(conn, owner, conversation_id, entries)

    async def conversation_items(self, owner: str, conversation_id: str) -> list[Item]:
        """Every item of a conversation, oldest first (the context of its next turn)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(items.c.data)
                .where(
                    and_(
                        items.c.conversation_id == conversation_id,
                        items.c.owner == owner,
                        items.c.role == "conversation",
                    )
                )
                .order_by(items.c.position)
            )
            return [r.data for r in rows]

    async def conversation_page(
        self, owner: str, conversation_id: str, *, order: str, after: str | None, limit: int
    ) -> ItemPage:
        where = and_(
            items.c.conversation_id == conversation_id,
            items.c.owner == owner,
            items.c.role == "conversation",
        )
        return await self._page(where, order=order, after=after, limit=limit)

    async def conversation_item(
        self, owner: str, conversation_id: str, item_id: str
    ) -> Item | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(items.c.data).where(
                        and_(
                            items.c.conversation_id == conversation_id,
                            items.c.owner == owner,
                            items.c.role == "conversation",
                            items.c.item_id == item_id,
                        )
                    )
                )
            ).first()
        return None if row is None else dict(row.data)

    async def delete_conversation_item(
        self, owner: str, conversation_id: str, item_id: str
    ) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(items).where(
                    and_(
                        items.c.conversation_id == conversation_id,
                        items.c.owner == owner,
                        items.c.role == "conversation",
                        items.c.item_id == item_id,
                    )
                )
            )
        return bool(result.rowcount)

    async def _append_conversation(
        self, conn: AsyncConnection, owner: str, conversation_id: str, entries: list[Item]
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
        rows = _item_rows(
            owner,
            entries,
            start=int(end) - len(entries),
            conversation_id=conversation_id,
            role="conversation",
        )
        await conn.execute(items.insert(), rows)
        return True

    async def _page(self, where: Any, *, order: str, after: str | None, limit: int) -> ItemPage:
        descending = order == "desc"
        async with self.engine.connect() as conn:
            if after is not None:
                anchor = (
                    await conn.execute(
                        select(items.c.position)
                        .where(and_(where, items.c.item_id == after))
                        .order_by(items.c.position)
                        .limit(1)
                    )
                ).scalar()
                if anchor is not None:
                    where = and_(
                        where,
                        items.c.position < anchor if descending else items.c.position > anchor,
                    )
            ordering = items.c.position.desc() if descending else items.c.position.asc()
            rows = await conn.execute(
                select(items.c.data).where(where).order_by(ordering).limit(limit + 1)
            )
            data = [dict(r.data) for r in rows]
        return ItemPage(data[:limit], len(data) > limit)
