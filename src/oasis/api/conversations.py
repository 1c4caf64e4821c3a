"""``/v1/conversations`` and their items."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from oasis.api.deps import ConversationsDep, IncludeDep, OwnerDep
from oasis.wire.base import dump
from oasis.wire.conversations import (
    ConversationCreateRequest,
    ConversationItemsRequest,
    ConversationUpdateRequest,
)

router = APIRouter(tags=["conversations"])


def _json(model: object) -> Response:
    assert isinstance(model, BaseModel)
    return Response(dump(model), media_type="application/json")


@router.post("/v1/conversations", response_model=None)
async def create_conversation(
    body: ConversationCreateRequest, service: ConversationsDep, owner: OwnerDep
) -> Response:
    return _json(await service.create(owner, body.metadata, body.items))


@router.get("/v1/conversations/{conversation_id}", response_model=None)
async def retrieve_conversation(
    conversation_id: str, service: ConversationsDep, owner: OwnerDep
) -> Response:
    return _json(await service.retrieve(owner, conversation_id))


@router.post("/v1/conversations/{conversation_id}", response_model=None)
async def update_conversation(
    conversation_id: str,
    body: ConversationUpdateRequest,
    service: ConversationsDep,
    owner: OwnerDep,
) -> Response:
    return _json(await service.update(owner, conversation_id, body.metadata))


@router.delete("/v1/conversations/{conversation_id}", response_model=None)
async def delete_conversation(
    conversation_id: str, service: ConversationsDep, owner: OwnerDep
) -> Response:
    return _json(await service.delete(owner, conversation_id))


@router.post("/v1/conversations/{conversation_id}/items", response_model=None)
async def create_items(
    conversation_id: str,
    body: ConversationItemsRequest,
    service: ConversationsDep,
    owner: OwnerDep,
    include: IncludeDep,
) -> Response:
    return _json(await service.add_items(owner, conversation_id, body.items, include))


@router.get("/v1/conversations/{conversation_id}/items", response_model=None)
async def list_items(
    conversation_id: str,
    service: ConversationsDep,
    owner: OwnerDep,
    include: IncludeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Response:
    return _json(
        await service.list_items(
            owner, conversation_id, order=order, after=after, limit=limit, include=include
        )
    )


@router.get("/v1/conversations/{conversation_id}/items/{item_id}", response_model=None)
async def retrieve_item(
    conversation_id: str,
    item_id: str,
    service: ConversationsDep,
    owner: OwnerDep,
    include: IncludeDep,
) -> Response:
    return _json(await service.get_item(owner, conversation_id, item_id, include))


@router.delete("/v1/conversations/{conversation_id}/items/{item_id}", response_model=None)
async def delete_item(
    conversation_id: str, item_id: str, service: ConversationsDep, owner: OwnerDep
) -> Response:
    return _json(await service.delete_item(owner, conversation_id, item_id))
