"""Bodies of the stored Chat Completions endpoints (``/v1/chat/completions/{id}``)."""

from __future__ import annotations

from typing import Any, Literal

from openai.types.chat import ChatCompletion
from pydantic import BaseModel

from oasis.wire.base import Metadata, WireModel


class ChatCompletionUpdateRequest(WireModel):
    """``POST /v1/chat/completions/{id}``: ``metadata`` is required; null clears it."""

    metadata: Metadata | None


class ChatCompletionList(BaseModel):
    """``GET /v1/chat/completions``: a cursor page (the SDK's ``SyncCursorPage``)."""

    object: Literal["list"] = "list"
    data: list[ChatCompletion]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ChatCompletionMessageList(BaseModel):
    """``GET /v1/chat/completions/{id}/messages``: the request's messages, each with an id.

    The messages stay plain JSON: the SDK's ``ChatCompletionStoreMessage`` allows only
    ``role: "assistant"``, while this list holds the request's user, system and tool
    messages too, as OpenAI's does.
    """

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool
