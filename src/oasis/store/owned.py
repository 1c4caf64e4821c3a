"""One owned table: a new row, a row by id, a page of rows, a removal, all scoped by owner.

Files, containers, vector stores, batches and stored chat completions are each a table
whose rows have a public ``id``, an ``owner`` and a ``pk`` that follows creation order.
:class:`OwnedRows` is what their repositories share: a row of another owner does not
exist for any method here, and a list is paged by :func:`~oasis.store.pagination.fetch_page`
on ``pk`` with the public id as its cursor. A repository narrows further (an expiry, a
filter) by passing conditions, and builds its own objects from the rows::

    rows = OwnedRows(engine, files, each(_stored), columns=_COLUMNS)
    await rows.get(owner, file_id, _unexpired(now))      # StoredFile | None
    await rows.page(owner, PageQuery(after=..., limit=20), _unexpired(now), purpose=None)
    await rows.delete(owner, file_id)                    # False when there was none
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Row, Table, and_, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.store.pagination import Page, PageQuery, fetch_page

T = TypeVar("T")

# Builds a repository's objects from rows, with the connection that read them at hand
# (a vector store's file counts, a batch's line counts come from further queries).
Load = Callable[[AsyncConnection, Sequence[Row[Any]]], Awaitable[list[T]]]
# More to do in the transaction that changes a row: remove its child rows once it is
# gone, check that a new row may be added.
Cascade = Callable[[AsyncConnection], Awaitable[object]]


def each(build: Callable[[Row[Any]], T]) -> Load[T]:
    """A :data:`Load` that builds one object per row and needs nothing more."""

    async def load(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[T]:
        return [build(row) for row in rows]

    return load


class OwnedRows(Generic[T]):
    """The rows of ``table`` as objects ``T``, each visible only to its owner.

    ``columns`` (default: every column) are read for ``load``; ``id_column`` is the public
    id that ``get`` and ``delete`` look up and list cursors name.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        load: Load[T],
        *,
        columns: Sequence[ColumnElement[Any]] | None = None,
        id_column: str = "id",
    ) -> None:
        self.engine = engine
        self.table = table
        self.load = load
        self.columns: list[ColumnElement[Any]] = list(table.c if columns is None else columns)
        self.id: ColumnElement[Any] = table.c[id_column]

    def mine(self, owner: str, *where: ColumnElement[bool]) -> ColumnElement[bool]:
        """The condition for ``owner``'s rows that also meet every one of ``where``."""
        return and_(self.table.c.owner == owner, *where)

    async def insert(
        self, owner: str, values: Mapping[str, Any], *, check: Cascade | None = None
    ) -> None:
        """A new row of ``owner`` (``values`` holds its other columns), after ``check`` in
        the same transaction (which may raise to refuse the row)."""
        async with self.engine.begin() as conn:
            if check is not None:
                await check(conn)
            await conn.execute(insert(self.table).values(owner=owner, **values))

    async def get(self, owner: str, object_id: str, *where: ColumnElement[bool]) -> T | None:
        """The owner's row with this id (and meeting ``where``), or None."""
        async with self.engine.connect() as conn:
            return await self.get_in(conn, owner, object_id, *where)

    async def get_in(
        self, conn: AsyncConnection, owner: str, object_id: str, *where: ColumnElement[bool]
    ) -> T | None:
        """:meth:`get` on a connection the caller holds (inside its transaction)."""
        query = select(*self.columns).where(self.mine(owner, self.id == object_id, *where))
        row = (await conn.execute(query)).first()
        if row is None:
            return None
        return (await self.load(conn, [row]))[0]

    async def page(
        self, owner: str, query: PageQuery, *where: ColumnElement[bool], **equal: Any
    ) -> Page[T]:
        """A page of the owner's rows meeting ``where``, in creation order as ``query`` asks.

        Each ``column=value`` of ``equal`` narrows the page to rows holding that value,
        unless the value is None (a list filter the client did not give)."""
        given = [self.table.c[name] == value for name, value in equal.items() if value is not None]
        async with self.engine.connect() as conn:
            page = await fetch_page(
                conn,
                self.columns,
                self.mine(owner, *where, *given),
                key=self.table.c.pk,  # creation order, without ties between equal seconds
                cursor=self.id,
                after=query.after,
                order=query.order,
                limit=query.limit,
                before=query.before,
            )
            return Page(await self.load(conn, page.data), page.has_more)

    async def delete(
        self,
        owner: str,
        object_id: str,
        *where: ColumnElement[bool],
        cascade: Cascade | None = None,
    ) -> bool:
        """Remove the owner's row (and, with it, what ``cascade`` removes); False, and
        nothing removed, when the owner has no such row."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(self.table).where(self.mine(owner, self.id == object_id, *where))
            )
            if not result.rowcount:
                return False
            if cascade is not None:
                await cascade(conn)
        return True
