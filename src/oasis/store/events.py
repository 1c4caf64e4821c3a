"""The event log of a background streamed response, kept for ``GET ?stream=true`` replay."""

from __future__ import annotations

from sqlalchemy import and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.store.tables import response_events

# (sequence number, event type, the event's JSON text)
Event = tuple[int, str, str]


class EventLogRepository:
    """Append-only event logs, one per response, read back in sequence order."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def append(self, response_id: str, events: list[Event]) -> None:
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

    async def after(self, response_id: str, after: int) -> list[Event]:
        """The logged events with a sequence number above ``after``, in order."""
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

    async def last_seq(self, response_id: str) -> int:
        """The highest logged sequence number, -1 for an empty log."""
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    select(func.max(response_events.c.seq)).where(
                        response_events.c.response_id == response_id
                    )
                )
            ).scalar()
        return -1 if value is None else int(value)

    @staticmethod
    async def delete_in(conn: AsyncConnection, response_id: str) -> None:
        """Drop a response's log, in the caller's transaction."""
        await conn.execute(
            delete(response_events).where(response_events.c.response_id == response_id)
        )
