"""Background ingestion of vector-store files: parse, chunk, embed, store.

Files wait in a queue served by a few worker tasks. The database is the truth: a file is
``in_progress`` until one transaction stores its chunks and marks it ``completed`` (or it
is marked ``failed`` with a ``last_error``), so a file that was in the queue when the
server stopped is simply queued again at start-up (:meth:`Ingestion.recover`) and
finished then. With replicas (:mod:`oasis.services.leases`) the file is indexed by the
one that leases it; the files of a replica that died are adopted by the others' sweeps.
Should two ever index one file, the second finds it no longer ``in_progress`` and writes
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

import numpy as np

from oasis.errors import NotFoundError
from oasis.retrieval.chunking import chunk_text
from oasis.retrieval.parsing import DocumentError, extract_text
from oasis.retrieval.ranking import to_blob, unit_rows
from oasis.services.embeddings import EmbeddingService
from oasis.services.leases import Leases
from oasis.store.vector_stores import NewChunk, StoredFile, VectorStoreRepository

log = logging.getLogger(__name__)

WORKERS = 2
EMBED_SLICE = 512  # chunks handed to the embeddings batcher at once
LEASE = "ingestion"  # the lease kind of a file being indexed


class FileSource(Protocol):
    """Where a File's name and bytes come from (the Files service)."""

    async def get(self, owner: str, file_id: str) -> Any:
        """The ``FileObject`` (``filename``, ``bytes``); NotFoundError when missing."""
        ...

    async def content(self, owner: str, file_id: str) -> bytes:
        """The file's bytes; NotFoundError when missing."""
        ...


Key = tuple[str, str, str]  # owner, vector store id, file id


class Ingestion:
    """Indexes attached files in the background; see the module docstring."""

    def __init__(
        self,
        repo: VectorStoreRepository,
        files: FileSource,
        embeddings: EmbeddingService,
        model: str | None = None,
        leases: Leases | None = None,
    ) -> None:
        self.repo = repo
        self.leases = leases or Leases(None)
        self.files = files
        self.embeddings = embeddings
        self.model = model
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()  # in the queue or being indexed here
        self._workers: list[asyncio.Task[None]] = []

    def submit(self, owner: str, store_id: str, file_id: str) -> None:
        """Queue an attached (``in_progress``) file (once while it waits or runs)."""
        key = (owner, store_id, file_id)
        if key in self._queued:
            return
        self._queued.add(key)
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"ingest-{i}") for i in range(WORKERS)
            ]
        self._queue.put_nowait(key)

    async def recover(self) -> int:
        """Queue every file left ``in_progress`` (by a server that stopped); how many.

        With replicas, only the files no live replica is indexing.
        """
        pending = await self.repo.in_progress()
        if self.leases.shared:
            orphans = set(await self.leases.orphans(LEASE, [_job_id(*_key(r)) for r in pending]))
            pending = [r for r in pending if _job_id(*_key(r)) in orphans]
        for row in pending:
            self.submit(row.owner, row.vector_store_id, row.file_id)
        if pending:
            log.info("ingestion: resuming %d file(s) left in progress", len(pending))
        return len(pending)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            job_id = _job_id(*key)
            try:
                if await self.leases.claim(LEASE, job_id):
                    try:
                        await self._ingest(*key)
                    finally:
                        await asyncio.shield(self.leases.release(LEASE, job_id))
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad file must not stop the worker
                log.exception("ingestion of %s failed", key[2])
                with contextlib.suppress(Exception):
                    await self.repo.fail_file(
                        *key, "server_error", "The server failed while indexing this file."
                    )
            finally:
                self._queued.discard(key)
                self._queue.task_done()

    async def _ingest(self, owner: str, store_id: str, file_id: str) -> None:
        row = await self.repo.file(owner, store_id, file_id)
        if row is None or row.status != "in_progress":
            return  # detached, cancelled or already done
        try:
            found = await self.files.get(owner, file_id)
            data = await self.files.content(owner, file_id)
        except NotFoundError:
            await self.repo.fail_file(
                owner, store_id, file_id, "invalid_file", "The file was deleted."
            )
            return
        filename = str(getattr(found, "filename", "") or row.filename)
        try:
            text = await asyncio.to_thread(extract_text, data, filename)
        except DocumentError as exc:
            await self.repo.fail_file(owner, store_id, file_id, exc.code, str(exc))
            return
        chunks = await self._chunks(row, text)
        if not chunks:
            await self.repo.fail_file(
                owner, store_id, file_id, "invalid_file", f"'{filename}' has no text to index."
            )
            return
        texts = [c.text for c in chunks]
        # In slices, so a huge file never floods the model's queue past its bound.
        parts = [
            await self.embeddings.embed_texts(texts[i : i + EMBED_SLICE], self.model)
            for i in range(0, len(texts), EMBED_SLICE)
        ]
        vectors = unit_rows(np.concatenate(parts))
        stored = [
            NewChunk(c.text, c.tokens, to_blob(v)) for c, v in zip(chunks, vectors, strict=True)
        ]
        usage = sum(len(c.text.encode("utf-8")) for c in chunks) + int(vectors.nbytes)
        await self.repo.complete_file(owner, store_id, file_id, stored, usage)

    async def _chunks(self, row: StoredFile, text: str) -> list[Any]:
        count = await self.embeddings.token_counter(self.model)
        static = row.chunking["static"]
        return await asyncio.to_thread(
            chunk_text,
            text,
            count,
            int(static["max_chunk_size_tokens"]),
            int(static["chunk_overlap_tokens"]),
        )

    async def close(self) -> None:
        """Stop the workers; queued files stay ``in_progress`` and resume at next start."""
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()


def _key(row: StoredFile) -> Key:
    return row.owner, row.vector_store_id, row.file_id


def _job_id(_owner: str, store_id: str, file_id: str) -> str:
    return f"{store_id}:{file_id}"
