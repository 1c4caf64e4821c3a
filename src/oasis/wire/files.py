"""Request bodies of ``/v1/files`` and ``/v1/uploads``, and the file list we return."""

from __future__ import annotations

from typing import Literal

from openai.types import FileObject
from pydantic import BaseModel, Field

from oasis.wire.base import WireModel

# What a client may upload a file for (the API's ``purpose`` values on upload).
UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]

# The API's bounds on ``expires_after.seconds``: one hour to 30 days.
MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 30 * 24 * 3600


class ExpiresAfter(WireModel):
    """When a file expires: ``seconds`` after its creation (the only anchor there is)."""

    anchor: Literal["created_at"]
    seconds: int = Field(ge=MIN_EXPIRY_SECONDS, le=MAX_EXPIRY_SECONDS)


class FileCreateForm(WireModel):
    """The scalar fields of ``POST /v1/files`` (the bytes come in the ``file`` part)."""

    purpose: UploadPurpose
    expires_after: ExpiresAfter | None = None


class UploadCreateRequest(WireModel):
    filename: str = Field(min_length=1, max_length=1024)
    purpose: UploadPurpose
    bytes: int = Field(ge=0)
    mime_type: str = Field(min_length=1, max_length=255)
    expires_after: ExpiresAfter | None = None


class UploadCompleteRequest(WireModel):
    part_ids: list[str] = Field(min_length=1)
    md5: str | None = None


class FileList(BaseModel):
    """``GET /v1/files``: a cursor page (the SDK's ``SyncCursorPage[FileObject]``)."""

    object: Literal["list"]
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool
