"""Usage records: one row per request that used a model (and per hosted tool kind it
called), per container session and per change in stored bytes, summed per time bucket."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.caller import UsageEntry, UsageRow
from oasis.store.tables import projects, usage_records, work_callers

# What a usage row can be grouped by (the Usage API's names for its columns).
GROUP_COLUMNS = {
    "project_id": usage_records.c.project_id,
    "api_key_id": usage_records.c.key_id,
    "model": usage_records.c.model,
}
SUMMED = (
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "characters",
    "seconds",
    "images",
    "tool_calls",
    "bytes",
)
# The bucket that holds every row before the first asked for (levels: stored bytes).
BEFORE = -1


@dataclass(frozen=True)
class UsageSum:
    """The sums of one group in one bucket (``bucket`` counts buckets from the start)."""

    bucket: int
    groups: dict[str, str | None]
    requests: int
    totals: dict[str, float]


@dataclass(frozen=True)
class UsageFilter:
    """Which rows to sum: the Usage API's ``project_ids``, ``api_key_ids``, ``models``."""

    project_ids: Sequence[str] = ()
    key_ids: Sequence[str] = ()
    models: Sequence[str] = ()

    def clauses(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        for column, wanted in (
            (usage_records.c.project_id, self.project_ids),
            (usage_records.c.key_id, self.key_ids),
            (usage_records.c.model, self.models),
        ):
            if wanted:
                found.append(column.in_(list(wanted)))
        return found


async def insert_rows(conn: AsyncConnection, rows: Sequence[UsageRow]) -> None:
    """Store ``rows`` as of now, in the caller's transaction."""
    if not rows:
        return
    now = int(time.time())
    await conn.execute(
        usage_records.insert(),
        [
            {
                "created_at": now,
                "owner": row.owner,
                "project_id": row.project_id,
                "key_id": row.key_id,
                **dataclasses.asdict(row.entry),
            }
            for row in rows
        ],
    )


async def record_bytes(conn: AsyncConnection, owner: str, endpoint: str, change: int) -> None:
    """Record a change in ``owner``'s stored bytes, in the transaction that made it. Stored
    objects know their owner only; the owner of a project's objects is the project."""
    if not change:
        return
    project = select(projects.c.id).where(projects.c.id == owner).scalar_subquery()
    await conn.execute(
        usage_records.insert().values(
            created_at=int(time.time()),
            owner=owner,
            project_id=project,
            key_id=None,
            **dataclasses.asdict(UsageEntry(endpoint, "", bytes=change)),
        )
    )


@dataclass(frozen=True)
class WorkCaller:
    """Who asked for a piece of background work (its usage is theirs, and its project's
    ceiling on output tokens holds for it)."""

    project_id: str | None
    key_id: str | None
    max_tokens: int | None = None


class UsageRepository:
    """Writes usage rows and sums them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def insert(
        self, owner: str, project_id: str | None, key_id: str | None, entry: UsageEntry
    ) -> None:
        """Record what one request of ``owner`` (through ``key_id``) used, as of now."""
        async with self.engine.begin() as conn:
            await insert_rows(conn, [UsageRow(owner, project_id, key_id, entry)])

    async def remember_caller(self, kind: str, work_id: str, caller: WorkCaller) -> None:
        """Keep who asked for the work ``kind``/``work_id`` (see :meth:`caller_of`)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                work_callers.insert().values(
                    kind=kind, work_id=work_id, project_id=caller.project_id, key_id=caller.key_id
                )
            )

    async def caller_of(self, kind: str, work_id: str) -> WorkCaller:
        """Who asked for the work (nobody known: work stored before schema version 13),
        with their project's ceiling as it is now."""
        query = (
            select(work_callers.c.project_id, work_callers.c.key_id, projects.c.max_tokens)
            .select_from(
                work_callers.outerjoin(projects, projects.c.id == work_callers.c.project_id)
            )
            .where(and_(work_callers.c.kind == kind, work_callers.c.work_id == work_id))
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return WorkCaller(None, None) if row is None else WorkCaller(row[0], row[1], row[2])

    async def sums(
        self,
        endpoint: str,
        start: int,
        end: int,
        width: int,
        group_by: Sequence[str] = (),
        where: UsageFilter | None = None,
        origin: int | None = None,
        since_ever: bool = False,
    ) -> list[UsageSum]:
        """Totals of ``endpoint``'s rows in ``[start, end)`` per ``width``-second bucket
        (numbered from ``origin``, by default ``start``) and per value of the ``group_by``
        columns (names from :data:`GROUP_COLUMNS`). ``since_ever``: the rows before
        ``start`` too, summed in bucket :data:`BEFORE` (what a level starts from)."""
        origin = start if origin is None else origin
        bucket = case(
            (usage_records.c.created_at < start, BEFORE),
            else_=(usage_records.c.created_at - origin) // width,
        ).label("bucket")
        groups = [GROUP_COLUMNS[name].label(name) for name in group_by]
        sums = [func.sum(usage_records.c[name]).label(name) for name in SUMMED]
        window = [usage_records.c.created_at < end]
        if not since_ever:
            window.append(usage_records.c.created_at >= start)
        query = (
            select(bucket, *groups, func.count().label("requests"), *sums)
            .where(
                and_(
                    usage_records.c.endpoint == endpoint,
                    *window,
                    *(where or UsageFilter()).clauses(),
                )
            )
            .group_by(bucket, *groups)
            .order_by(bucket, *groups)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_sum(row, group_by) for row in rows]

    async def daily(self, since: int) -> list[dict[str, Any]]:
        """Per day (UTC), endpoint and model since ``since``: requests and token totals."""
        day = (usage_records.c.created_at // 86400).label("day")
        query = (
            select(
                day,
                usage_records.c.endpoint,
                usage_records.c.model,
                func.count().label("requests"),
                *[func.sum(usage_records.c[name]).label(name) for name in SUMMED],
            )
            .where(usage_records.c.created_at >= since)
            .group_by(day, usage_records.c.endpoint, usage_records.c.model)
            .order_by(day, usage_records.c.endpoint, usage_records.c.model)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [dict(row._mapping) for row in rows]


def _sum(row: Any, group_by: Sequence[str]) -> UsageSum:
    mapping = row._mapping
    return UsageSum(
        bucket=int(mapping["bucket"]),
        groups={name: mapping[name] for name in group_by},
        requests=int(mapping["requests"]),
        totals={name: float(mapping[name] or 0) for name in SUMMED},
    )
