"""Uploads in parts, per owner: the upload rows and the part rows (bytes are blobs).

Every change of an upload's state is a conditional UPDATE on ``status = 'pending'``, taken
in the same transaction as the part rows it touches, so a part is never added to an
upload that another request has just completed or cancelled, and only one of two racing
completions wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oasis.store.files import existing_ids
from oasis.store.storage import StorageCap, reserve
from oasis.store.tables import upload_parts, uploads


@dataclass(frozen=True)
class StoredUpload:
    id: str
    created_at: int
    expires_at: int
    bytes: int
    filename: str
    purpose: str
    mime_type: str
    status: str
    file_id: str | None = None
    file_expires_after: int | None = None


@dataclass(frozen=True)
class StoredPart:
    id: str
    upload_id: str
    created_at: int
    bytes: int


def _upload(row: Row[Any]) -> StoredUpload:
    return StoredUpload(
        row.id,
        row.created_at,
        row.expires_at,
        row.bytes,
        row.filename,
        row.purpose,
        row.mime_type,
        row.status,
        row.file_id,
        row.file_expires_after,
    )


async def _claim(
    conn: AsyncConnection, owner: str, upload_id: str, now: int, **values: Any
) -> bool:
    """Update a pending, unexpired upload (``values``, or nothing but a row lock)."""
    result = await conn.execute(
        update(uploads)
        .where(
            and_(
                uploads.c.id == upload_id,
                uploads.c.owner == owner,
                uploads.c.status == "pending",
                uploads.c.expires_at > now,
            )
        )
        .values(**(values or {"status": "pending"}))
    )
    return bool(result.rowcount)


async def _drop_parts(conn: AsyncConnection, upload_ids: list[str]) -> list[str]:
    rows = await conn.execute(
        delete(upload_parts)
        .where(upload_parts.c.upload_id.in_(upload_ids))
        .returning(upload_parts.c.id)
    )
    return list(rows.scalars())


class UploadRepository:
    """Rows of ``uploads`` and ``upload_parts``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def insert(self, owner: str, upload: StoredUpload) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                uploads.insert().values(
                    id=upload.id,
                    owner=owner,
                    created_at=upload.created_at,
                    expires_at=upload.expires_at,
                    bytes=upload.bytes,
                    filename=upload.filename,
                    purpose=upload.purpose,
                    mime_type=upload.mime_type,
                    status=upload.status,
                    file_id=upload.file_id,
                    file_expires_after=upload.file_expires_after,
                )
            )

    async def get(self, owner: str, upload_id: str) -> StoredUpload | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(uploads).where(and_(uploads.c.id == upload_id, uploads.c.owner == owner))
                )
            ).first()
        return None if row is None else _upload(row)

    async def add_part(
        self,
        owner: str,
        part: StoredPart,
        now: int,
        max_total: int,
        cap: StorageCap | None = None,
    ) -> bool | None:
        """Record a part of a pending upload: True; False if the upload is no longer
        pending; None if its parts would hold more than ``max_total`` bytes. Raises
        :class:`~oasis.store.storage.StorageFull` when the part would take the owner past
        ``cap``."""
        async with self.engine.begin() as conn:
            if not await _claim(conn, owner, part.upload_id, now):
                return False
            stored = (
                await conn.execute(
                    select(func.coalesce(func.sum(upload_parts.c.bytes), 0)).where(
                        upload_parts.c.upload_id == part.upload_id
                    )
                )
            ).scalar()
            if int(stored or 0) + part.bytes > max_total:
                return None
            await reserve(conn, cap, part.bytes)
            await conn.execute(
                upload_parts.insert().values(
                    id=part.id,
                    upload_id=part.upload_id,
                    created_at=part.created_at,
                    bytes=part.bytes,
                )
            )
        return True

    async def parts(self, upload_id: str) -> dict[str, StoredPart]:
        """The parts stored for an upload, by id."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(upload_parts).where(upload_parts.c.upload_id == upload_id)
            )
            return {
                row.id: StoredPart(row.id, row.upload_id, row.created_at, row.bytes) for row in rows
            }

    async def finish(
        self, owner: str, upload_id: str, status: str, now: int, file_id: str | None = None
    ) -> list[str] | None:
        """Move a pending upload to ``status`` and drop its part rows; the ids of the
        parts (whose blobs the caller removes), or None if it was not pending."""
        async with self.engine.begin() as conn:
            if not await _claim(conn, owner, upload_id, now, status=status, file_id=file_id):
                return None
            return await _drop_parts(conn, [upload_id])

    async def expire(self, now: int, limit: int = 500) -> tuple[int, list[str]]:
        """Mark up to ``limit`` pending uploads past their time expired: how many, and the
        ids of their parts."""
        async with self.engine.begin() as conn:
            due = list(
                (
                    await conn.execute(
                        select(uploads.c.id)
                        .where(and_(uploads.c.status == "pending", uploads.c.expires_at <= now))
                        .limit(limit)
                    )
                ).scalars()
            )
            if not due:
                return 0, []
            await conn.execute(
                update(uploads)
                .where(and_(uploads.c.id.in_(due), uploads.c.status == "pending"))
                .values(status="expired")
            )
            return len(due), await _drop_parts(conn, due)

    async def known_parts(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are stored parts (for finding blobs that no row owns)."""
        return await existing_ids(self.engine, upload_parts.c.id, ids)
