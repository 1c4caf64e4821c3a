"""Writing uploaded bytes to the blob store without holding them in memory, under a limit.

The data may be bytes, a binary file (an upload spooled by the multipart parser), a
synchronous iterator of chunks (consumed in a worker thread) or an asynchronous one (a
request body as it arrives). Past ``limit`` bytes the write stops, the partial blob is
removed and :class:`PayloadTooLargeError` is raised; an error raised by the data source
itself (say a checksum found wrong at its end) also leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import BinaryIO, cast

from oasis.errors import PayloadTooLargeError
from oasis.store.blobs import BlobStore

BlobData = bytes | BinaryIO | Iterable[bytes] | AsyncIterator[bytes]

_CHUNK = 1 << 20


def _read_chunks(stream: BinaryIO) -> Iterable[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


async def write_blob(
    store: BlobStore,
    blob_id: str,
    data: BlobData,
    *,
    limit: int,
    too_large: Callable[[], PayloadTooLargeError],
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
    too_large: PayloadTooLargeError,
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
    too_large: PayloadTooLargeError,
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
