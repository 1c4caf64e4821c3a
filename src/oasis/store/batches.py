"""Batches and their lines, per owner: the durable state of ``/v1/batches``.

A batch's state moves only through :meth:`BatchRepository.transition`, a conditional update
(``WHERE status IN ...``), so a cancel and the runner's own steps never both win. A line is
done once, in the transaction that stores its output (:meth:`BatchRepository.finish_lines`,
several lines to a transaction). With replicas, the runner's writes carry its lease's
:class:`~oasis.store.leases.Fence`: once another replica has taken the batch over, they
are refused (:class:`~oasis.store.leases.LeaseLost`) and change nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import Row, and_, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.caller import UsageRow
from oasis.store.leases import Fence, check_fence
from oasis.store.owned import OwnedRows
from oasis.store.pagination import Page, PageQuery
from oasis.store.tables import batch_lines, batches
from oasis.store.usage import insert_rows

# The states a batch can still leave; the runner resumes these after a restart.
UNFINISHED = ("validating", "in_progress", "finalizing", "cancelling")
TIMESTAMPS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


@dataclass(frozen=True)
class LineTokens:
    """What one line's model work counted, as its answer's ``usage`` reports it."""

    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class Counts:
    """``request_counts`` (lines in the batch, done well, done with an error) and the
    tokens of the lines done so far."""

    total: int = 0
    completed: int = 0
    failed: int = 0
    tokens: LineTokens = LineTokens()


@dataclass(frozen=True)
class StoredBatch:
    """One row of ``batches`` (``row`` holds every column by name) and its line counts."""

    row: dict[str, Any]
    counts: Counts

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @property
    def owner(self) -> str:
        return str(self.row["owner"])

    @property
    def status(self) -> str:
        return str(self.row["status"])


@dataclass(frozen=True)
class LineResult:
    """A line's outcome: its output line (what the output or error file holds for it)."""

    line: int
    failed: bool
    result: dict[str, Any]
    tokens: LineTokens = LineTokens()
    usage: Sequence[UsageRow] = ()  # stored with the result, in its transaction


@dataclass(frozen=True)
class PendingLine:
    """A line still to run: its number in the input file, its ``custom_id`` and body."""

    line: int
    custom_id: str
    request: dict[str, Any]


class BatchRepository:
    """Rows of ``batches`` and ``batch_lines``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.rows = OwnedRows(engine, batches, _load)

    async def insert(self, owner: str, values: dict[str, Any]) -> None:
        """A new batch (``values`` holds its columns but ``owner``)."""
        await self.rows.insert(owner, values)

    async def get(self, owner: str | None, batch_id: str) -> StoredBatch | None:
        """The batch (of ``owner``, or of anyone when ``owner`` is None) with its counts."""
        if owner is not None:
            return await self.rows.get(owner, batch_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(batches).where(batches.c.id == batch_id))).first()
            return None if row is None else (await _load(conn, [row]))[0]

    async def page(self, owner: str, query: PageQuery) -> Page[StoredBatch]:
        """A page of the owner's batches."""
        return await self.rows.page(owner, query)

    async def unfinished(self) -> list[str]:
        """Ids of every batch that has not reached an end state (for the runner at start-up)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(batches.c.id).where(batches.c.status.in_(UNFINISHED)).order_by(batches.c.pk)
            )
            return list(rows.scalars())

    async def transition(
        self,
        batch_id: str,
        to: str,
        allowed: Iterable[str],
        now: int,
        *,
        fence: Fence | None = None,
        **values: Any,
    ) -> bool:
        """Move the batch to ``to`` (stamping ``<to>_at``) if its status is in ``allowed``
        (and ``fence`` still holds)."""
        stamp = f"{to}_at"
        if stamp in TIMESTAMPS:
            values[stamp] = now
        async with self.engine.begin() as conn:
            await check_fence(conn, fence)
            result = await conn.execute(
                update(batches)
                .where(and_(batches.c.id == batch_id, batches.c.status.in_(tuple(allowed))))
                .values(status=to, **values)
            )
        return bool(result.rowcount)

    async def start(
        self,
        batch_id: str,
        lines: list[PendingLine],
        model: str | None,
        now: int,
        fence: Fence | None = None,
    ) -> bool:
        """Store the validated lines and move ``validating`` → ``in_progress``, together.

        False (and nothing stored) when the batch is no longer validating (cancelled).
        """
        async with self.engine.begin() as conn:
            await check_fence(conn, fence)
            moved = await conn.execute(
                update(batches)
                .where(and_(batches.c.id == batch_id, batches.c.status == "validating"))
                .values(status="in_progress", in_progress_at=now, model=model)
            )
            if not moved.rowcount:
                return False
            # Rows from an earlier, interrupted start were rolled back with its status.
            for first in range(0, len(lines), 1000):
                await conn.execute(
                    insert(batch_lines),
                    [
                        {
                            "batch_id": batch_id,
                            "line": item.line,
                            "custom_id": item.custom_id,
                            "request": item.request,
                            "done": False,
                            "failed": False,
                        }
                        for item in lines[first : first + 1000]
                    ],
                )
        return True

    async def pending(self, batch_id: str, *, after: int, limit: int) -> list[PendingLine]:
        """Up to ``limit`` lines not yet done, numbered past ``after``, in file order."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(batch_lines.c.line, batch_lines.c.custom_id, batch_lines.c.request)
                .where(
                    and_(
                        batch_lines.c.batch_id == batch_id,
                        batch_lines.c.done.is_(False),
                        batch_lines.c.line > after,
                    )
                )
                .order_by(batch_lines.c.line)
                .limit(limit)
            )
            return [PendingLine(row.line, row.custom_id, row.request) for row in rows]

    async def finish_lines(
        self, batch_id: str, results: list[LineResult], fence: Fence | None = None
    ) -> list[int]:
        """Mark lines done with their output lines and store their usage records, in one
        transaction; the numbers of those written (a line already done keeps its first
        output, and its usage is not stored again). Raises
        :class:`~oasis.store.leases.LeaseLost`, writing nothing, once ``fence`` no longer
        holds."""
        written: list[int] = []
        async with self.engine.begin() as conn:
            await check_fence(conn, fence)
            for item in results:
                updated = await conn.execute(
                    update(batch_lines)
                    .where(
                        and_(
                            batch_lines.c.batch_id == batch_id,
                            batch_lines.c.line == item.line,
                            batch_lines.c.done.is_(False),
                        )
                    )
                    .values(
                        done=True, failed=item.failed, result=item.result, **asdict(item.tokens)
                    )
                )
                if updated.rowcount:
                    written.append(item.line)
                    await insert_rows(conn, item.usage)
        return written

    async def expire_pending(self, batch_id: str, fence: Fence | None = None) -> None:
        """Mark the lines not yet done as failed, with no output (the batch expired)."""
        async with self.engine.begin() as conn:
            await check_fence(conn, fence)
            await conn.execute(
                update(batch_lines)
                .where(and_(batch_lines.c.batch_id == batch_id, batch_lines.c.done.is_(False)))
                .values(done=True, failed=True, result=None)
            )

    async def results(
        self, batch_id: str, *, failed: bool, chunk: int = 500
    ) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        """``(custom_id, output line)`` of the done lines that ``failed`` or not, in file
        order; the output is None for a line the batch expired before it ran."""
        where = and_(
            batch_lines.c.batch_id == batch_id,
            batch_lines.c.done.is_(True),
            batch_lines.c.failed.is_(failed),
        )
        after = 0
        while True:
            async with self.engine.connect() as conn:
                rows = list(
                    await conn.execute(
                        select(batch_lines.c.line, batch_lines.c.custom_id, batch_lines.c.result)
                        .where(and_(where, batch_lines.c.line > after))
                        .order_by(batch_lines.c.line)
                        .limit(chunk)
                    )
                )
            for row in rows:
                yield row.custom_id, row.result
            if len(rows) < chunk:
                return
            after = rows[-1].line


async def _load(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[StoredBatch]:
    """Batches with their line counts, counted from their lines now."""
    counts = await _counts(conn, [row.id for row in rows])
    return [StoredBatch(dict(row._mapping), counts.get(row.id, Counts())) for row in rows]


async def _counts(conn: AsyncConnection, ids: list[str]) -> dict[str, Counts]:
    """``request_counts`` of each batch in ``ids``, counted from its lines (exact as they run)."""
    if not ids:
        return {}
    done_well = and_(batch_lines.c.done.is_(True), batch_lines.c.failed.is_(False))
    done_badly = and_(batch_lines.c.done.is_(True), batch_lines.c.failed.is_(True))
    rows = await conn.execute(
        select(
            batch_lines.c.batch_id,
            func.count().label("total"),
            func.sum(case((done_well, 1), else_=0)).label("completed"),
            func.sum(case((done_badly, 1), else_=0)).label("failed"),
            *(func.sum(batch_lines.c[name]).label(name) for name in _TOKEN_COLUMNS),
        )
        .where(batch_lines.c.batch_id.in_(ids))
        .group_by(batch_lines.c.batch_id)
    )
    return {
        row.batch_id: Counts(
            int(row.total),
            int(row.completed or 0),
            int(row.failed or 0),
            LineTokens(**{name: int(row._mapping[name] or 0) for name in _TOKEN_COLUMNS}),
        )
        for row in rows
    }


_TOKEN_COLUMNS = tuple(field.name for field in fields(LineTokens))
