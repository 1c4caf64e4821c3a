"""``/v1/conversations`` and their items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from oasis.api.deps import ConversationsDep, IncludeDep, OwnerDep
from oasis.api.listing import json_body, page_query
from oasis.store.pagination import PageQuery
from oasis.wire.conversations import (
    ConversationCreateRequest,
    ConversationItemsRequest,
    ConversationUpdateRequest,
)

router = APIRouter(tags=["conversations"])

ItemPage = Annotated[PageQuery, Depends(page_query())]


@router.post("/v1/conversations", response_model=None)
async def create_conversation(
    body: ConversationCreateRequest, service: ConversationsDep, owner: OwnerDep
) -> Response:
    return json_body(await service.create(owner, body.metadata, body.items))


@router.get("/v1/conversations/{conversation_id}", response_model=None)
async def retrieve_conversation(
    conversation_id: str, service: ConversationsDep, owner: OwnerDep
) -> Response:
    return json_body(await service.retrieve(owner, conversation_id))


@router.post("/v1/conversations/{conversation_id}", response_model=None)
async def update_conversation(
    conversation_id: str,
    body: ConversationUpdateRequest,
    service: ConversationsDep,
    owner: OwnerDep,
) -> Response:
    return json_body(await service.update(owner, conversation_id, body.metadata))


@router.delete("/v1/conversations/{conversation_id}", response_model=None)
async def delete_conversation(
    conversation_id: str, service: ConversationsDep, owner: OwnerDep
) -> Response:
    return json_body(await service.delete(owner, conversation_id))


@router.post("/v1/conversations/{conversation_id}/items", response_model=None)
async def create_items(
    conversation_id: str,
    body: ConversationItemsRequest,
    service: ConversationsDep,
    owner: OwnerDep,
    include: IncludeDep,
) -> Response:
    return json_body(await service.add_items(owner, conversation_id, body.items, include))


@router.get("/v1/conversations/{conversation_id}/items", response_model=None)
async def list_items(
    conversation_id: str,
    service: ConversationsDep,
    owner: OwnerDep,
    include: IncludeDep,
    page: ItemPage,
) -> Response:
    return json_body(await service.list_items(owner, conversation_id, page, include))


@router.get("/v1/conversations/{conversation_id}/items/{item_id}", response_model=None)
async def retrieve_item(
    conversation_id: str,
    item_id: str,
    service: ConversationsDep,
    owner: OwnerDep,
    include: IncludeDep,
) -> Response:
    return json_body(await service.get_item(owner, conversation_id, item_id, include))


@router.delete("/v1/conversations/{conversation_id}/items/{item_id}", response_model=None)
async def delete_item(
    conversation_id: str, item_id: str, service: ConversationsDep, owner: OwnerDep
) -> Response:
    return json_body(await service.delete_item(owner, conversation_id, item_id))
