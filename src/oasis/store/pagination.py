"""Cursor paging shared by every list endpoint: ``after``, ``order``, ``limit``, ``has_more``.

A list is ordered by one sortable ``key`` column (a position, a sequence number); the
cursor ``after`` is the public id of a row in the list, found through the ``cursor``
column. A cursor that names no row of the list is ignored, as before the split: the page
starts at the beginning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Row, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and whether rows follow it."""

    data: list[T]
    has_more: bool


async def fetch_page(
    conn: AsyncConnection,
    columns: list[ColumnElement[Any]],
    where: ColumnElement[bool],
    *,
    key: ColumnElement[Any],
    cursor: ColumnElement[Any],
    after: str | None,
    order: str,
    limit: int,
) -> Page[Row[Any]]:
    """Up to ``limit`` rows of ``columns`` matching ``where``, after ``after`` in ``order``.

    One row more than asked is read to tell ``has_more`` without a count.
    """
    descending = order == "desc"
    if after is not None:
        anchor = (
            await conn.execute(
                select(key).where(and_(where, cursor == after)).order_by(key).limit(1)
            )
        ).scalar()
        if anchor is not None:
            where = and_(where, key < anchor if descending else key > anchor)
    ordering = key.desc() if descending else key.asc()
    rows = list(
        await conn.execute(select(*columns).where(where).order_by(ordering).limit(limit + 1))
    )
    return Page(rows[:limit], len(rows) > limit)
