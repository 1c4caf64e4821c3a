"""Request bodies of ``/v1/conversations`` (DIGEST §1.15)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from oasis.wire.base import WireModel
from oasis.wire.responses import check_metadata


class ConversationCreateRequest(WireModel):
    items: list[dict[str, Any]] | None = Field(default=None, max_length=20)
    metadata: dict[str, str] | None = None

    _check_metadata = field_validator("metadata")(classmethod(lambda cls, v: check_metadata(v)))


class ConversationUpdateRequest(WireModel):
    metadata: dict[str, str] | None

    _check_metadata = field_validator("metadata")(classmethod(lambda cls, v: check_metadata(v)))


class ConversationItemsRequest(WireModel):
    items: list[dict[str, Any]] = Field(min_length=1, max_length=20)
