"""Request body of ``POST /v1/batches``, and the batch list we return."""

from __future__ import annotations

from typing import Literal

from openai.types import Batch
from pydantic import BaseModel, Field

from oasis.wire.base import Metadata, WireModel
from oasis.wire.files import ExpiresAfter

# The endpoints a batch line may call here (the API's list less moderations and videos,
# which oasis does not serve).
BatchEndpoint = Literal[
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/images/generations",
    "/v1/images/edits",
]


class BatchCreateRequest(WireModel):
    input_file_id: str = Field(min_length=1, max_length=64)
    endpoint: BatchEndpoint
    completion_window: Literal["24h"]
    metadata: Metadata | None = None
    output_expires_after: ExpiresAfter | None = None


class BatchList(BaseModel):
    """``GET /v1/batches``: a cursor page (the SDK's ``SyncCursorPage[Batch]``)."""

    object: Literal["list"]
    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool
