"""Files: bytes in the blob store, metadata in the database, both owned by an API key.

Other modules (vector stores, batches, uploads) call :class:`FilesService` directly::

    info = await files.create(owner, "notes.md", "assistants", data)   # -> FileObject
    info = await files.get(owner, file_id)        # 404 NotFoundError naming the id
    data = await files.content(owner, file_id)    # the whole bytes
    info, chunks = await files.stream(owner, file_id)   # the bytes as an async iterator
    await files.delete(owner, file_id)            # -> FileDeleted

``data`` may be bytes, a binary file, an iterator of chunks or an async iterator of chunks
(:mod:`oasis.services.blob_writes`); it is never held in memory whole. A file with an
expiry vanishes from every read once it passes, and the sweep (:meth:`FilesService.sweep`,
run periodically by the app) removes its row and bytes. Code that keeps its own state about
files (vector stores) registers a callback in :attr:`FilesService.on_delete`, called after a
file is deleted or swept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, BinaryIO

from openai.types import FileDeleted, FileObject

from oasis.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError, found
from oasis.ids import new_id
from oasis.services.blob_writes import BlobData, discard_orphans, known_size, write_blob
from oasis.services.storage_cap import StorageQuota, cap_of, refused, write_limit
from oasis.store.blobs import BlobNotFoundError, BlobStore
from oasis.store.files import FileRepository, StoredFile
from oasis.store.pagination import PageQuery
from oasis.store.storage import StorageFull
from oasis.wire.files import MAX_EXPIRY_SECONDS, FileList
from oasis.wire.lists import cursor_list

log = logging.getLogger(__name__)

# Purposes a client uploads with, and those of files the server makes (batch results...).
CLIENT_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
SERVER_PURPOSES = frozenset({"assistants_output", "batch_output", "fine-tune-results"})
PURPOSES = CLIENT_PURPOSES | SERVER_PURPOSES
# Batch input files expire after 30 days unless the client sets a policy, as OpenAI's do.
_DEFAULT_EXPIRY = {"batch": MAX_EXPIRY_SECONDS}

_CHUNK = 1 << 20

DeleteHook = Callable[[str, str], Awaitable[None]]


def missing(file_id: str) -> NotFoundError:
    """The 404 for a file id that the caller's key has no (unexpired) file under."""
    return NotFoundError(f"No such File object: {file_id}", param="id")


def file_object(stored: StoredFile) -> FileObject:
    """A stored file as the API returns it (``status`` is always ``processed``)."""
    fields: dict[str, Any] = {
        "id": stored.id,
        "object": "file",
        "bytes": stored.bytes,
        "created_at": stored.created_at,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "expires_at": stored.expires_at,
    }
    if stored.purpose == "evals":
        # The API takes ``evals`` on upload and echoes it, but the SDK's FileObject
        # does not list it; echo it anyway (docs/files.md notes the gap).
        return FileObject.model_construct(**fields)
    return FileObject.model_validate(fields)


class FilesService:
    """Create, read, list and delete files of one owner; sweep expired ones."""

    def __init__(
        self,
        repo: FileRepository,
        blobs: BlobStore,
        *,
        max_file_bytes: int,
        quota: StorageQuota | None = None,
    ) -> None:
        self.repo = repo
        self.blobs = blobs
        self.max_file_bytes = max_file_bytes
        # The total each owner may store through the API (files, parts, container files).
        self.quota = quota
        self.on_delete: list[DeleteHook] = []

    async def create(
        self,
        owner: str,
        filename: str,
        purpose: str,
        data: BlobData,
        expires_after: int | None = None,
        *,
        max_bytes: int | None = None,
        quota_param: str | None = None,
    ) -> FileObject:
        """Store ``data`` as a new file; ``expires_after`` is seconds after its creation.

        ``max_bytes`` (default ``max_file_bytes``) bounds the size: past it nothing is
        stored and the caller gets 413. ``purpose`` may be a client's or a server-made one.
        With ``quota_param`` (a client's upload) the owner's storage total holds too: past
        it, a 400 naming that field.
        """
        if purpose not in PURPOSES:
            raise InvalidRequestError(
                f"Invalid value for 'purpose': {purpose!r} is not one of "
                f"{', '.join(sorted(CLIENT_PURPOSES))}.",
                param="purpose",
                code="invalid_value",
            )
        limit = self.max_file_bytes if max_bytes is None else max_bytes
        file_id = new_id("file", sep="-", nbytes=12)

        def too_large() -> PayloadTooLargeError:
            return PayloadTooLargeError(
                f"File too large: the limit is {limit} bytes.", param="file", code="file_too_large"
            )

        quota = self.quota if quota_param is not None else None
        bound, refuse = await write_limit(
            quota, owner, quota_param or "file", limit, too_large, known_size(data)
        )
        size = await write_blob(self.blobs, file_id, data, limit=bound, too_large=refuse)
        created = int(time.time())
        seconds = expires_after if expires_after is not None else _DEFAULT_EXPIRY.get(purpose)
        stored = StoredFile(
            id=file_id,
            created_at=created,
            expires_at=None if seconds is None else created + seconds,
            bytes=size,
            filename=filename,
            purpose=purpose,
        )
        try:
            await self.repo.insert(owner, stored, cap_of(quota, owner))
        except StorageFull as exc:
            await asyncio.to_thread(self.blobs.delete, file_id)
            raise refused(exc, quota_param or "file") from None
        except BaseException:
            await asyncio.to_thread(self.blobs.delete, file_id)
            raise
        return file_object(stored)

    async def get(self, owner: str, file_id: str) -> FileObject:
        """The file, or 404 naming the id (another key's file is a 404 too)."""
        return file_object(await self._stored(owner, file_id))

    async def list(self, owner: str, query: PageQuery, *, purpose: str | None = None) -> FileList:
        """A page of the owner's files in creation order, as ``query`` asks."""
        page = await self.repo.page(owner, int(time.time()), query, purpose=purpose)
        return cursor_list(FileList, [file_object(stored) for stored in page.data], page.has_more)

    async def content(self, owner: str, file_id: str) -> bytes:
        """The file's bytes, whole (for small files; large ones through :meth:`stream`)."""
        _, chunks = await self.stream(owner, file_id)
        return b"".join([chunk async for chunk in chunks])

    async def stream(self, owner: str, file_id: str) -> tuple[FileObject, AsyncIterator[bytes]]:
        """The file and its bytes as chunks. The blob is opened here, so a delete that
        comes while the chunks are read does not cut them short."""
        stored = await self._stored(owner, file_id)
        try:
            handle = await asyncio.to_thread(self.blobs.open, file_id)
        except BlobNotFoundError:
            raise missing(file_id) from None  # deleted a moment ago
        return file_object(stored), _chunks(handle)

    async def delete(self, owner: str, file_id: str) -> FileDeleted:
        """Remove the file's row and bytes; 404 if the owner has no such file."""
        await self._stored(owner, file_id)  # an expired file is already gone: 404
        if not await self.repo.delete(owner, file_id):
            raise missing(file_id)
        await self._forget(owner, file_id)
        return FileDeleted(id=file_id, object="file", deleted=True)

    async def sweep(self) -> int:
        """Remove expired files (rows, bytes, and whatever hooks keep); how many went."""
        removed = 0
        while batch := await self.repo.take_expired(int(time.time())):
            for owner, file_id in batch:
                await self._forget(owner, file_id)
            removed += len(batch)
        return removed

    async def discard_orphans(self) -> int:
        """Remove bytes that no file row owns (a crash between writing them and the row)."""
        return await discard_orphans(self.blobs, self.repo.known)

    async def _stored(self, owner: str, file_id: str) -> StoredFile:
        return found(await self.repo.get(owner, file_id, int(time.time())), missing(file_id))

    async def _forget(self, owner: str, file_id: str) -> None:
        await asyncio.to_thread(self.blobs.delete, file_id)
        for hook in self.on_delete:
            try:
                await hook(owner, file_id)
            except Exception:
                # The file is gone either way; a hook's failure must not undo that.
                log.exception("a file-deletion hook failed for %s", file_id)


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, _CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)
