"""Items: the ordered input and output of responses and the contents of conversations.

One table serves both (``role`` says which list a row belongs to), so responses and
conversations share the row builder and the paged read here.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.store.pagination import Page, PageQuery, fetch_page
from oasis.store.tables import items
from oasis.types import Item

ItemPage = Page[Item]


async def insert_items(
    conn: AsyncConnection, owner: str, entries: list[Item], *, start: int = 0, **where: Any
) -> None:
    """Insert ``entries`` at positions ``start``, ``start + 1``, ... in this transaction.

    ``where`` names the list they join (``response_id`` or ``conversation_id``, ``role``).
    """
    if not entries:
        return
    now = int(time.time())
    rows = [
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
    await conn.execute(items.insert(), rows)


async def item_page(
    conn: AsyncConnection, where: ColumnElement[bool], query: PageQuery
) -> ItemPage:
    """A page of the item list ``where`` selects, by position, the cursor an item id."""
    page = await fetch_page(
        conn,
        [items.c.data],
        where,
        key=items.c.position,
        cursor=items.c.item_id,
        after=query.after,
        order=query.order,
        limit=query.limit,
    )
    return Page([dict(row.data) for row in page.data], page.has_more)


class ItemRepository:
    """Look-ups across every item list of an owner."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def find(self, owner: str, item_id: str) -> Item | None:
        """Any stored item of ``owner`` with this id (an ``item_reference`` target)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(items.c.data)
                    .where(and_(items.c.owner == owner, items.c.item_id == item_id))
                    .limit(1)
                )
            ).first()
        return None if row is None else dict(row.data)
