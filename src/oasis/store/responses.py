"""Stored responses: the latest snapshot, the context each continues, and their outputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.caller import UsageRow
from oasis.store.conversations import ConversationRepository
from oasis.store.events import EventLogRepository
from oasis.store.items import ItemPage, insert_items, item_page
from oasis.store.owned import OwnedRows, each
from oasis.store.pagination import PageQuery
from oasis.store.tables import items, responses
from oasis.store.usage import insert_rows
from oasis.types import Item

UNFINISHED = ("queued", "in_progress")


@dataclass(frozen=True)
class StoredResponse:
    id: str
    owner: str
    status: str
    background: bool
    stream: bool
    body: dict[str, Any]


_COLUMNS = (
    responses.c.id,
    responses.c.owner,
    responses.c.status,
    responses.c.background,
    responses.c.stream,
    responses.c.body,
)


def _stored(row: Any) -> StoredResponse:
    return StoredResponse(row.id, row.owner, row.status, row.background, row.stream, row.body)


class ResponseRepository:
    """Responses and their items, per owner.

    A response's end and the turn it adds to its conversation are written in one
    transaction, through the conversation repository's in-transaction append.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.rows = OwnedRows(engine, responses, each(_stored), columns=_COLUMNS)

    async def insert(
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
                )
            )
            await insert_items(conn, owner, inputs, response_id=body["id"], role="input")
            await insert_items(conn, owner, outputs or [], response_id=body["id"], role="output")
            if conversation_append and conversation.get("id"):
                await ConversationRepository.append_in(
                    conn, owner, conversation["id"], conversation_append
                )

    async def finish(
        self,
        owner: str,
        body: dict[str, Any],
        *,
        outputs: list[Item],
        conversation_append: list[Item] | None = None,
        usage: Sequence[UsageRow] = (),
    ) -> bool:
        """Record the end of a response stored earlier (background): once.

        The final snapshot, the output items, the turn added to the conversation and the
        usage records are one transaction; nothing is written (False) if the response has
        already ended or is gone.
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
            await insert_items(conn, owner, outputs, response_id=body["id"], role="output")
            if conversation_append and conversation.get("id"):
                await ConversationRepository.append_in(
                    conn, owner, conversation["id"], conversation_append
                )
            await insert_rows(conn, usage)
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

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        return await self.rows.get(owner, response_id)

    async def delete(self, owner: str, response_id: str) -> bool:
        """Delete a response, its own items and event log. Chained descendants keep copies."""

        async def cascade(conn: AsyncConnection) -> None:
            await conn.execute(
                delete(items).where(
                    and_(items.c.response_id == response_id, items.c.owner == owner)
                )
            )
            await EventLogRepository.delete_in(conn, response_id)

        return await self.rows.delete(owner, response_id, cascade=cascade)

    async def context(self, owner: str, response_id: str) -> list[Item]:
        """A response's whole context then its output: what a chained turn continues."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(items.c.data)
                .where(and_(items.c.response_id == response_id, items.c.owner == owner))
                .order_by(items.c.role, items.c.position)  # "input" sorts before "output"
            )
            return [r.data for r in rows]

    async def items(self, owner: str, response_id: str, role: str, query: PageQuery) -> ItemPage:
        """A page of a response's ``input`` or ``output`` items."""
        where = and_(
            items.c.response_id == response_id, items.c.owner == owner, items.c.role == role
        )
        async with self.engine.connect() as conn:
            return await item_page(conn, where, query)

    async def unfinished(self) -> list[StoredResponse]:
        """Responses left queued or in progress (by a crash): for recovery at start-up."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(*_COLUMNS).where(responses.c.status.in_(UNFINISHED)))
            return [_stored(row) for row in rows]
