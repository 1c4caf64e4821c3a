"""The total a project may store through the API (``[files] max_total_bytes``).

Files, Uploads parts and container files are each bounded by their own limit; this bounds
them together, per owner (an API key's project). A write is refused with a 400 naming the
field that carries its bytes, at three points: before any byte is stored when its size is
known and does not fit (a multipart upload is whole before the route runs); while its
bytes are written, which stop where the room ends; and, exactly, in the transaction that
adds its row (:func:`oasis.store.storage.reserve`), which counts every replica's writes.
Deleting frees room at once: the total is counted from the rows that are stored.
"""

from __future__ import annotations

from collections.abc import Callable

from oasis.errors import InvalidRequestError, OasisError
from oasis.store.storage import StorageCap, StorageFull, StorageRepository

TooLarge = Callable[[], OasisError]


def storage_full(param: str, max_total: int, used: int | None = None) -> InvalidRequestError:
    """The 400 of a write that would take its owner past ``max_total`` stored bytes."""
    stored = "" if used is None else f" ({used} are stored)"
    return InvalidRequestError(
        f"Storage limit reached: the files, upload parts and container files of this "
        f"project may hold {max_total} bytes in all{stored}. Delete some to make room.",
        param=param,
        code="storage_limit_exceeded",
    )


def refused(exc: StorageFull, param: str) -> InvalidRequestError:
    """The 400 for a write that its row's transaction refused."""
    return storage_full(param, exc.cap.max_total, exc.used)


class StorageQuota:
    """An owner's room under ``max_total`` bytes (0: no total)."""

    def __init__(self, repo: StorageRepository, max_total: int) -> None:
        self.repo = repo
        self.max_total = max_total

    def cap(self, owner: str) -> StorageCap | None:
        """The cap the row's transaction checks; None without a total."""
        return StorageCap(owner, self.max_total) if self.max_total else None

    def full(self, param: str, used: int | None = None) -> InvalidRequestError:
        """The 400 of a write past the total."""
        return storage_full(param, self.max_total, used)

    async def check(self, owner: str, param: str, size: int) -> None:
        """Raise the 400 unless ``size`` more bytes fit under the owner's total now."""
        if self.max_total:
            await self._used(owner, param, size)

    async def _used(self, owner: str, param: str, size: int) -> int:
        """What the owner stores now; raises the 400 unless ``size`` more bytes fit."""
        used = await self.repo.used(owner)
        if used + size > self.max_total:
            raise self.full(param, used)
        return used

    async def bound(
        self,
        owner: str,
        param: str,
        limit: int,
        too_large: TooLarge,
        size: int | None = None,
    ) -> tuple[int, TooLarge]:
        """The limit a write of ``size`` bytes (None: not known yet) is written under, and
        the error past it: the object's own ``limit`` and ``too_large``, or the room left
        under the total where that is less. Raises the 400 at once when the owner has no
        room left, or not ``size`` bytes of it."""
        if not self.max_total or (size is not None and size > limit):
            return limit, too_large  # (the write then fails on the object's own limit)
        used = await self._used(owner, param, max(size or 0, 1))  # (no room: refused)
        room = self.max_total - used
        if room >= limit:
            return limit, too_large
        return room, lambda: self.full(param, used)


async def write_limit(
    quota: StorageQuota | None,
    owner: str,
    param: str,
    limit: int,
    too_large: TooLarge,
    size: int | None = None,
) -> tuple[int, TooLarge]:
    """:meth:`StorageQuota.bound` where a quota is kept; else ``limit`` and ``too_large``."""
    if quota is None:
        return limit, too_large
    return await quota.bound(owner, param, limit, too_large, size)


def cap_of(quota: StorageQuota | None, owner: str) -> StorageCap | None:
    """The cap a row's transaction checks for ``owner``; None without a quota or total."""
    return None if quota is None else quota.cap(owner)
