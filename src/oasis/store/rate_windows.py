"""Requests and tokens per scope and minute, counted in the database.

Counting in the database (rather than in each process) is what keeps a limit whole when
several replicas share one PostgreSQL: each admission is one conditional ``UPDATE`` on the
scope's row for the current minute, so the row lock (PostgreSQL) or the writer lock
(SQLite) orders concurrent requests and no two of them take the last slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.store.tables import rate_windows


@dataclass(frozen=True)
class Budget:
    """One scope's limits: ``None`` is unlimited."""

    scope: str
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True)
class Count:
    """A scope's use of the current minute, after this request was (or was not) let in."""

    budget: Budget
    requests: int
    tokens: int

    @property
    def exhausted(self) -> str | None:
        """``requests`` or ``tokens`` when that budget is used up, else None."""
        if self.budget.rpm is not None and self.requests >= self.budget.rpm:
            return "requests"
        if self.budget.tpm is not None and self.tokens >= self.budget.tpm:
            return "tokens"
        return None


class Refused(Exception):
    """A scope's minute is used up; ``count`` says which and by how much."""

    def __init__(self, count: Count) -> None:
        super().__init__(count.budget.scope)
        self.count = count


class RateWindowRepository:
    """Admits requests against budgets and charges tokens, per one-minute window."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def admit(self, budgets: Sequence[Budget], window: int) -> list[Count]:
        """Count one request against every budget, all or none; :class:`Refused` if full.

        A request is let in while its scope has requests left and has not spent its
        tokens; tokens are charged afterwards (:meth:`charge`), when they are known.
        """
        counts: list[Count] = []
        async with self.engine.begin() as conn:
            for budget in budgets:  # writes first: SQLite then holds the writer lock
                await _ensure_row(conn, budget.scope, window)
            for budget in budgets:
                room = [rate_windows.c.scope == budget.scope, rate_windows.c.window == window]
                if budget.rpm is not None:
                    room.append(rate_windows.c.requests < budget.rpm)
                if budget.tpm is not None:
                    room.append(rate_windows.c.tokens < budget.tpm)
                row = (
                    await conn.execute(
                        update(rate_windows)
                        .where(and_(*room))
                        .values(requests=rate_windows.c.requests + 1)
                        .returning(rate_windows.c.requests, rate_windows.c.tokens)
                    )
                ).first()
                if row is None:
                    now = await _current(conn, budget.scope, window)
                    raise Refused(Count(budget, *now))  # rolls back the other scopes' counts
                counts.append(Count(budget, row.requests, row.tokens))
        return counts

    async def charge(self, scopes: Sequence[str], window: int, tokens: int) -> None:
        """Add ``tokens`` to each scope's current minute."""
        if not scopes or tokens <= 0:
            return
        async with self.engine.begin() as conn:
            for scope in scopes:
                await _ensure_row(conn, scope, window)
                await conn.execute(
                    update(rate_windows)
                    .where(and_(rate_windows.c.scope == scope, rate_windows.c.window == window))
                    .values(tokens=rate_windows.c.tokens + tokens)
                )

    async def forget_before(self, window: int) -> None:
        """Drop the counts of minutes before ``window``: nothing reads them again."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(rate_windows).where(rate_windows.c.window < window))


async def _ensure_row(conn: AsyncConnection, scope: str, window: int) -> None:
    values = {"scope": scope, "window": window, "requests": 0, "tokens": 0}
    if conn.dialect.name == "postgresql":
        await conn.execute(postgresql.insert(rate_windows).values(values).on_conflict_do_nothing())
    else:
        await conn.execute(sqlite.insert(rate_windows).values(values).on_conflict_do_nothing())


async def _current(conn: AsyncConnection, scope: str, window: int) -> tuple[int, int]:
    row = (
        await conn.execute(
            select(rate_windows.c.requests, rate_windows.c.tokens).where(
                and_(rate_windows.c.scope == scope, rate_windows.c.window == window)
            )
        )
    ).one()
    return int(row.requests), int(row.tokens)
