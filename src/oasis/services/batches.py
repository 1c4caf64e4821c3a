"""Batches: create, retrieve, list and cancel; the work itself is :mod:`batch_runner`'s.

A batch is stored ``validating`` and handed to the runner at once; ``request_counts`` are
counted from its lines on every read, so they are exact while it runs.
"""

from __future__ import annotations

import time
from typing import Any

from openai.types import Batch

from oasis.errors import InvalidRequestError, NotFoundError, found
from oasis.ids import new_id
from oasis.services.batch_input import MAX_BYTES
from oasis.services.batch_runner import BatchRunner
from oasis.services.files import FilesService
from oasis.store.batches import TIMESTAMPS, BatchRepository, LineTokens, StoredBatch
from oasis.store.pagination import PageQuery
from oasis.wire.batches import BatchCreateRequest, BatchList
from oasis.wire.lists import cursor_list

COMPLETION_WINDOW = 24 * 3600  # the only window there is: "24h"


def batch_object(stored: StoredBatch) -> Batch:
    """A stored batch as the API returns it, every field present (null when unset)."""
    row = stored.row
    errors = row["errors"]
    fields: dict[str, Any] = {
        "id": row["id"],
        "object": "batch",
        "endpoint": row["endpoint"],
        "model": row["model"],
        "errors": {"object": "list", "data": errors} if errors else None,
        "input_file_id": row["input_file_id"],
        "completion_window": row["completion_window"],
        "status": row["status"],
        "output_file_id": row["output_file_id"],
        "error_file_id": row["error_file_id"],
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        **{name: row[name] for name in TIMESTAMPS},
        "request_counts": {
            "total": stored.counts.total,
            "completed": stored.counts.completed,
            "failed": stored.counts.failed,
        },
        "metadata": row["metadata"],
        "usage": _usage(stored.counts.tokens),
    }
    return Batch.model_validate(fields)


def _usage(tokens: LineTokens) -> dict[str, Any]:
    """The batch's ``usage``: the sum of its finished lines' own ``usage``."""
    return {
        "input_tokens": tokens.input_tokens,
        "input_tokens_details": {"cached_tokens": tokens.cached_tokens},
        "output_tokens": tokens.output_tokens,
        "output_tokens_details": {"reasoning_tokens": tokens.reasoning_tokens},
        "total_tokens": tokens.input_tokens + tokens.output_tokens,
    }


class BatchesService:
    """The batches of each owner."""

    def __init__(self, repo: BatchRepository, files: FilesService, runner: BatchRunner) -> None:
        self.repo = repo
        self.files = files
        self.runner = runner

    async def create(self, owner: str, request: BatchCreateRequest) -> Batch:
        """Store a new batch on the owner's ``batch`` file and start validating it."""
        try:
            info = await self.files.get(owner, request.input_file_id)
        except NotFoundError as exc:
            raise NotFoundError(exc.message, param="input_file_id") from None
        if info.purpose != "batch":
            raise InvalidRequestError(
                f"The file {info.id} has purpose {info.purpose!r}; a batch's input file "
                "must be uploaded with purpose 'batch'.",
                param="input_file_id",
                code="invalid_value",
            )
        if info.bytes > MAX_BYTES:
            raise InvalidRequestError(
                f"The input file is over {MAX_BYTES} bytes, the most a batch takes.",
                param="input_file_id",
                code="file_too_large",
            )
        batch_id = new_id("batch", nbytes=16)
        now = int(time.time())
        expiry = request.output_expires_after
        await self.runner.remember_caller(batch_id)
        await self.repo.insert(
            owner,
            {
                "id": batch_id,
                "created_at": now,
                "status": "validating",
                "endpoint": request.endpoint,
                "input_file_id": info.id,
                "completion_window": request.completion_window,
                "expires_at": now + COMPLETION_WINDOW,
                "metadata": request.metadata,
                "output_expires_after": expiry.seconds if expiry else None,
            },
        )
        self.runner.start(batch_id)
        return await self.get(owner, batch_id)

    async def get(self, owner: str, batch_id: str) -> Batch:
        """The batch, or 404 naming the id (another key's batch is a 404 too)."""
        return batch_object(await self._stored(owner, batch_id))

    async def list(self, owner: str, query: PageQuery) -> BatchList:
        """A page of the owner's batches (newest first unless ``query`` asks otherwise)."""
        page = await self.repo.page(owner, query)
        return cursor_list(BatchList, [batch_object(s) for s in page.data], page.has_more)

    async def cancel(self, owner: str, batch_id: str) -> Batch:
        """Ask a validating or running batch to stop: it is ``cancelling`` until the lines
        that finished are written out, then ``cancelled``. A batch past that is returned
        as it is."""
        stored = await self._stored(owner, batch_id)
        moved = await self.repo.transition(
            stored.id, "cancelling", ["validating", "in_progress"], int(time.time())
        )
        if moved:
            await self.runner.cancel(stored.id)
        return await self.get(owner, batch_id)

    async def _stored(self, owner: str, batch_id: str) -> StoredBatch:
        missing = NotFoundError(f"No batch found with id '{batch_id}'.", param="batch_id")
        return found(await self.repo.get(owner, batch_id), missing)
