"""Stored Chat Completions: ``GET /v1/chat/completions`` and ``/v1/chat/completions/{id}``
(read, update metadata, delete) and its ``/messages``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from oasis.api.deps import OwnerDep, StoredChatDep
from oasis.api.listing import json_body, page_query
from oasis.errors import InvalidRequestError
from oasis.store.pagination import PageQuery
from oasis.wire.base import form_fields
from oasis.wire.chat_store import ChatCompletionUpdateRequest

router = APIRouter(tags=["chat"])

# Oldest first unless asked, as OpenAI lists stored completions and their messages.
StoredPage = Annotated[PageQuery, Depends(page_query(order="asc"))]


async def get_metadata_filter(request: Request) -> dict[str, str]:
    """The ``metadata`` filter as the SDK sends it: ``metadata[key]=value`` pairs."""
    value: Any = form_fields(request.query_params.multi_items()).get("metadata", {})
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "Filter by metadata with `metadata[key]=value` query parameters.",
            param="metadata",
            code="invalid_value",
        )
    return value


MetadataFilter = Annotated[dict[str, str], Depends(get_metadata_filter)]


@router.get("/v1/chat/completions", response_model=None)
async def list_chat_completions(
    stored: StoredChatDep,
    owner: OwnerDep,
    metadata: MetadataFilter,
    page: StoredPage,
    model: str | None = None,
) -> Response:
    return json_body(await stored.list(owner, page, model=model, metadata=metadata))


@router.get("/v1/chat/completions/{completion_id}", response_model=None)
async def retrieve_chat_completion(
    completion_id: str, stored: StoredChatDep, owner: OwnerDep
) -> Response:
    return json_body(await stored.get(owner, completion_id))


@router.post("/v1/chat/completions/{completion_id}", response_model=None)
async def update_chat_completion(
    completion_id: str, body: ChatCompletionUpdateRequest, stored: StoredChatDep, owner: OwnerDep
) -> Response:
    return json_body(await stored.update(owner, completion_id, body.metadata))


@router.delete("/v1/chat/completions/{completion_id}", response_model=None)
async def delete_chat_completion(
    completion_id: str, stored: StoredChatDep, owner: OwnerDep
) -> Response:
    return json_body(await stored.delete(owner, completion_id))


@router.get("/v1/chat/completions/{completion_id}/messages", response_model=None)
async def list_chat_completion_messages(
    completion_id: str, stored: StoredChatDep, owner: OwnerDep, page: StoredPage
) -> Response:
    return json_body(await stored.messages(owner, completion_id, page))
