"""Uploads: a large file sent in parts, then assembled into a File in the order the client
names them at completion (parts may arrive in parallel, in any order).

Each part is a blob in the ``upload_parts`` section as soon as it arrives. Completion
streams the named parts, in order, into a new file (checking ``md5`` over those bytes when
given) and drops the parts; cancellation and expiry (an hour after creation) drop them too.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator

from openai.types import FileObject, Upload
from openai.types.uploads import UploadPart

from oasis.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError
from oasis.ids import new_id
from oasis.services.blob_writes import BlobData, discard_orphans, known_size, write_blob
from oasis.services.files import FilesService
from oasis.services.storage_cap import cap_of, refused, write_limit
from oasis.store.blobs import BlobNotFoundError, BlobStore
from oasis.store.storage import StorageFull
from oasis.store.uploads import StoredPart, StoredUpload, UploadRepository
from oasis.wire.files import UploadCreateRequest

# An upload not completed within this many seconds of its creation expires (OpenAI: 1 h).
UPLOAD_LIFETIME = 3600

_CHUNK = 1 << 20


def _missing(upload_id: str) -> NotFoundError:
    return NotFoundError(f"No such Upload object: {upload_id}", param="upload_id")


def _status(upload: StoredUpload, now: int) -> str:
    if upload.status == "pending" and upload.expires_at <= now:
        return "expired"  # before the sweep has marked it so
    return upload.status


def _upload(upload: StoredUpload, status: str, file: FileObject | None = None) -> Upload:
    return Upload(
        id=upload.id,
        object="upload",
        bytes=upload.bytes,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
        filename=upload.filename,
        purpose=upload.purpose,
        status=status,  # type: ignore[arg-type]  # one of the four, from the database
        file=file,
    )


def _not_pending(upload_id: str, status: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Upload {upload_id} is {status}: it takes no more parts and cannot be completed "
        "or cancelled.",
        param="upload_id",
        code="upload_not_pending",
    )


class UploadsService:
    """Create uploads, add their parts, complete them into files, cancel them."""

    def __init__(
        self,
        repo: UploadRepository,
        parts: BlobStore,
        files: FilesService,
        *,
        max_upload_bytes: int,
        max_part_bytes: int,
    ) -> None:
        self.repo = repo
        self.parts = parts
        self.files = files
        self.max_upload_bytes = max_upload_bytes
        self.max_part_bytes = max_part_bytes

    async def create(self, owner: str, request: UploadCreateRequest) -> Upload:
        """A pending upload of ``request.bytes`` bytes (413 past ``max_upload_bytes``)."""
        if request.bytes > self.max_upload_bytes:
            raise PayloadTooLargeError(
                f"Upload too large: {request.bytes} bytes declared, the limit is "
                f"{self.max_upload_bytes} bytes.",
                param="bytes",
                code="upload_too_large",
            )
        quota = self.files.quota
        if quota is not None:
            # Refused now if the declared bytes cannot fit (the parts are counted as they
            # come, and completing turns them into a file of the same size).
            await quota.check(owner, "bytes", request.bytes)
        created = int(time.time())
        upload = StoredUpload(
            id=new_id("upload"),
            created_at=created,
            expires_at=created + UPLOAD_LIFETIME,
            bytes=request.bytes,
            filename=request.filename,
            purpose=request.purpose,
            mime_type=request.mime_type,
            status="pending",
            file_expires_after=request.expires_after.seconds if request.expires_after else None,
        )
        await self.repo.insert(owner, upload)
        return _upload(upload, "pending")

    async def add_part(self, owner: str, upload_id: str, data: BlobData) -> UploadPart:
        """Store one part (at most ``max_part_bytes``) of a pending upload."""
        upload = await self._pending(owner, upload_id)
        part_id = new_id("part")

        def too_large() -> PayloadTooLargeError:
            return PayloadTooLargeError(
                f"Upload part too large: the limit is {self.max_part_bytes} bytes.",
                param="data",
                code="part_too_large",
            )

        limit, refuse = await write_limit(
            self.files.quota, owner, "data", self.max_part_bytes, too_large, known_size(data)
        )
        size = await write_blob(self.parts, part_id, data, limit=limit, too_large=refuse)
        part = StoredPart(part_id, upload_id, int(time.time()), size)
        # Room for the declared bytes and one part more: a part retried after a lost
        # answer must not fail the upload, but the parts cannot fill the disk either.
        try:
            added = await self.repo.add_part(
                owner,
                part,
                part.created_at,
                upload.bytes + self.max_part_bytes,
                cap_of(self.files.quota, owner),
            )
        except StorageFull as exc:
            await asyncio.to_thread(self.parts.delete, part_id)
            raise refused(exc, "data") from None
        if added is not True:
            await asyncio.to_thread(self.parts.delete, part_id)
            if added is False:
                raise _not_pending(upload_id, await self._status_of(owner, upload_id))
            raise InvalidRequestError(
                f"The parts of upload {upload_id} would hold more than the {upload.bytes} "
                "bytes it was created with.",
                param="data",
                code="upload_too_large",
            )
        return UploadPart(
            id=part_id, object="upload.part", created_at=part.created_at, upload_id=upload_id
        )

    async def complete(
        self, owner: str, upload_id: str, part_ids: list[str], md5: str | None
    ) -> Upload:
        """Join the parts in ``part_ids`` order into a new File; the completed upload."""
        upload = await self._pending(owner, upload_id)
        stored = await self.repo.parts(upload_id)
        seen: set[str] = set()
        for index, part_id in enumerate(part_ids):
            if part_id not in stored or part_id in seen:
                problem = "is listed twice" if part_id in seen else "is not a part of it"
                raise InvalidRequestError(
                    f"Invalid part id '{part_id}': it {problem} (upload {upload_id}).",
                    param=f"part_ids[{index}]",
                    code="invalid_value",
                )
            seen.add(part_id)
        total = sum(stored[part_id].bytes for part_id in part_ids)
        if total != upload.bytes:
            raise InvalidRequestError(
                f"The parts add up to {total} bytes, but the upload was created with "
                f"{upload.bytes} bytes.",
                param="part_ids",
                code="invalid_value",
            )
        wanted = md5.strip().lower() if md5 else None
        try:
            file = await self.files.create(
                owner,
                upload.filename,
                upload.purpose,
                self._joined(part_ids, wanted),
                upload.file_expires_after,
                max_bytes=upload.bytes,
            )
        except BlobNotFoundError:
            raise _not_pending(upload_id, await self._status_of(owner, upload_id)) from None
        dropped = await self.repo.finish(
            owner, upload_id, "completed", int(time.time()), file_id=file.id
        )
        if dropped is None:  # cancelled, completed or expired while the parts were joined
            await self.files.delete(owner, file.id)
            raise _not_pending(upload_id, await self._status_of(owner, upload_id))
        await self._drop(dropped)
        return _upload(upload, "completed", file)

    async def cancel(self, owner: str, upload_id: str) -> Upload:
        """Cancel a pending upload; its parts are dropped."""
        upload = await self._pending(owner, upload_id)
        dropped = await self.repo.finish(owner, upload_id, "cancelled", int(time.time()))
        if dropped is None:
            raise _not_pending(upload_id, await self._status_of(owner, upload_id))
        await self._drop(dropped)
        return _upload(upload, "cancelled")

    async def sweep(self) -> int:
        """Expire pending uploads past their lifetime and drop their parts; how many."""
        expired = 0
        while True:
            count, parts = await self.repo.expire(int(time.time()))
            if not count:
                return expired
            expired += count
            await self._drop(parts)

    async def discard_orphans(self) -> int:
        """Remove part bytes that no part row owns (a crash between the two writes)."""
        return await discard_orphans(self.parts, self.repo.known_parts)

    def _joined(self, part_ids: list[str], md5: str | None) -> Iterator[bytes]:
        """The parts' bytes in order (read in a worker thread); checks ``md5`` at the end,
        so a mismatch stops the file from being stored."""
        digest = hashlib.md5(usedforsecurity=False)
        for part_id in part_ids:
            with self.parts.open(part_id) as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    yield chunk
        if md5 is not None and digest.hexdigest() != md5:
            raise InvalidRequestError(
                f"The md5 of the joined parts is {digest.hexdigest()}, not {md5}.",
                param="md5",
                code="md5_mismatch",
            )

    async def _pending(self, owner: str, upload_id: str) -> StoredUpload:
        upload = await self.repo.get(owner, upload_id)
        if upload is None:
            raise _missing(upload_id)
        status = _status(upload, int(time.time()))
        if status != "pending":
            raise _not_pending(upload_id, status)
        return upload

    async def _status_of(self, owner: str, upload_id: str) -> str:
        upload = await self.repo.get(owner, upload_id)
        return "gone" if upload is None else _status(upload, int(time.time()))

    async def _drop(self, part_ids: list[str]) -> None:
        def drop() -> None:
            for part_id in part_ids:
                self.parts.delete(part_id)

        await asyncio.to_thread(drop)
