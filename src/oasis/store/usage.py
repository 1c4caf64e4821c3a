"""Usage records: one row per request that used a model, summed per time bucket."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from oasis.caller import UsageEntry
from oasis.store.tables import usage_records

# What a usage row can be grouped by (the Usage API's names for its columns).
GROUP_COLUMNS = {
    "project_id": usage_records.c.project_id,
    "api_key_id": usage_records.c.key_id,
    "model": usage_records.c.model,
}
SUMMED = ("input_tokens", "cached_tokens", "output_tokens", "characters", "seconds", "images")


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


class UsageRepository:
    """Writes usage rows and sums them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def insert(
        self, owner: str, project_id: str | None, key_id: str | None, entry: UsageEntry
    ) -> None:
        """Record what one request of ``owner`` (through ``key_id``) used, as of now."""
        async with self.engine.begin() as conn:
            await conn.execute(
                usage_records.insert().values(
                    created_at=int(time.time()),
                    owner=owner,
                    project_id=project_id,
                    key_id=key_id,
                    **dataclasses.asdict(entry),
                )
            )

    async def sums(
        self,
        endpoint: str,
        start: int,
        end: int,
        width: int,
        group_by: Sequence[str] = (),
        where: UsageFilter | None = None,
        origin: int | None = None,
    ) -> list[UsageSum]:
        """Totals of ``endpoint``'s rows in ``[start, end)`` per ``width``-second bucket
        (numbered from ``origin``, by default ``start``) and per value of the ``group_by``
        columns (names from :data:`GROUP_COLUMNS`)."""
        origin = start if origin is None else origin
        bucket = ((usage_records.c.created_at - origin) // width).label("bucket")
        groups = [GROUP_COLUMNS[name].label(name) for name in group_by]
        sums = [func.sum(usage_records.c[name]).label(name) for name in SUMMED]
        query = (
            select(bucket, *groups, func.count().label("requests"), *sums)
            .where(
                and_(
                    usage_records.c.endpoint == endpoint,
                    usage_records.c.created_at >= start,
                    usage_records.c.created_at < end,
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
