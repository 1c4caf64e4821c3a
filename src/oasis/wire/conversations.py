"""Request bodies of ``/v1/conversations``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from oasis.wire.base import Metadata, WireModel


class ConversationCreateRequest(WireModel):
    items: list[dict[str, Any]] | None = Field(default=None, max_length=20)
    metadata: Metadata | None = None


class ConversationUpdateRequest(WireModel):
    metadata: Metadata | None


class ConversationItemsRequest(WireModel):
    items: list[dict[str, Any]] = Field(min_length=1, max_length=20)
