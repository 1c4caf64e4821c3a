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
class PageQuery:
    """What a list request asks for: a cursor on either side, the order, the page size."""

    after: str | None = None
    before: str | None = None
    order: str = "desc"
    limit: int = 20


FIRST_PAGE = PageQuery()


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
    before: str | None = None,
) -> Page[Row[Any]]:
    """Up to ``limit`` rows of ``columns`` matching ``where``, after ``after`` in ``order``.

    With ``before``, the page is the ``limit`` rows just before that row (still in
    ``order``), and ``has_more`` says whether rows come before the page. One row more than
    asked is read to tell ``has_more`` without a count.
    """
    descending = order == "desc"

    async def anchor_of(public_id: str) -> Any:
        return (
            await conn.execute(
                select(key).where(and_(where, cursor == public_id)).order_by(key).limit(1)
            )
        ).scalar()

    bounds = where
    if after is not None and (anchor := await anchor_of(after)) is not None:
        bounds = and_(bounds, key < anchor if descending else key > anchor)
    backwards = False
    if before is not None and (anchor := await anchor_of(before)) is not None:
        bounds = and_(bounds, key > anchor if descending else key < anchor)
        backwards = True  # read from the anchor outwards, then turn the page around
    ordering = key.desc() if descending != backwards else key.asc()
    rows = list(
        await conn.execute(select(*columns).where(bounds).order_by(ordering).limit(limit + 1))
    )
    page = rows[:limit]
    return Page(page[::-1] if backwards else page, len(rows) > limit)
