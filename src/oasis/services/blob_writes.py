"""Writing uploaded bytes to the blob store without holding them in memory, under a limit.

The data may be bytes, a binary file (an upload spooled by the multipart parser), a
synchronous iterator of chunks (consumed in a worker thread) or an asynchronous one (a
request body as it arrives). Past ``limit`` bytes the write stops, the partial blob is
removed and the caller's error (a 413, or the 400 of a full storage cap) is raised; an
error raised by the data source itself (say a checksum found wrong at its end) also
leaves nothing behind. Blobs that a
crash left without the row naming them are found and removed by :func:`discard_orphans`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import BinaryIO, cast

from oasis.errors import OasisError
from oasis.store.blobs import BlobNotFoundError, BlobStore

BlobData = bytes | BinaryIO | Iterable[bytes] | AsyncIterator[bytes]

_CHUNK = 1 << 20


def _read_chunks(stream: BinaryIO) -> Iterable[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def known_size(data: BlobData) -> int | None:
    """The size of ``data`` when it is bytes or a seekable file (a spooled upload), before
    anything is read; None for a stream of chunks."""
    if isinstance(data, bytes):
        return len(data)
    if hasattr(data, "seek") and hasattr(data, "tell"):
        stream = cast(BinaryIO, data)
        start = stream.tell()
        end = stream.seek(0, 2)
        stream.seek(start)
        return end - start
    return None


async def write_blob(
    store: BlobStore,
    blob_id: str,
    data: BlobData,
    *,
    limit: int,
    too_large: Callable[[], OasisError],
) -> int:
    """Store ``data`` under ``blob_id``, at most ``limit`` bytes; returns its size."""
    if isinstance(data, bytes):
        if len(data) > limit:
            raise too_large()
        data = [data]
    if isinstance(data, AsyncIterator):
        return await _write_async(store, blob_id, data, limit, too_large())
    # A file object iterates by lines; read it by fixed-size chunks instead.
    chunks = _read_chunks(cast(BinaryIO, data)) if hasattr(data, "read") else data
    return await asyncio.to_thread(_write_sync, store, blob_id, chunks, limit, too_large())


def _write_sync(
    store: BlobStore,
    blob_id: str,
    chunks: Iterable[bytes],
    limit: int,
    too_large: OasisError,
) -> int:
    with store.writer(blob_id) as out:
        for chunk in chunks:
            if out.size + len(chunk) > limit:
                raise too_large
            out.write(chunk)
        out.commit()
        return out.size


async def _write_async(
    store: BlobStore,
    blob_id: str,
    chunks: AsyncIterator[bytes],
    limit: int,
    too_large: OasisError,
) -> int:
    out = await asyncio.to_thread(store.writer, blob_id)
    try:
        async for chunk in chunks:
            if out.size + len(chunk) > limit:
                raise too_large
            await asyncio.to_thread(out.write, chunk)
        await asyncio.to_thread(out.commit)
        return out.size
    finally:
        await asyncio.to_thread(out.abort)  # a no-op after the commit


async def discard_orphans(
    store: BlobStore,
    known: Callable[[list[str]], Awaitable[set[str]]],
    older_than: float = 3600,
) -> int:
    """Remove blobs whose ids ``known`` does not report, and writes a crash cut short.

    A blob is written before the row that names it; a crash between the two leaves bytes
    nobody can reach. Only those older than ``older_than`` seconds go, so a write in
    progress keeps its bytes. Returns how many blobs were removed.
    """
    await asyncio.to_thread(store.discard_partial, older_than)
    ids = await asyncio.to_thread(lambda: list(store.ids()))
    owned = await known(ids)
    now = time.time()
    removed = 0
    for blob_id in ids:
        if blob_id in owned:
            continue
        try:
            stale = now - await asyncio.to_thread(store.modified, blob_id) > older_than
        except BlobNotFoundError:
            continue
        if stale and await asyncio.to_thread(store.delete, blob_id):
            removed += 1
    return removed
