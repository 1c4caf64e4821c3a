"""``/v1/conversations`` and their items."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from oasis.api.deps import OwnerDep
from oasis.responses.conversations import ConversationService
from oasis.responses.service import dump
from oasis.wire.conversations import (
    ConversationCreateRequest,
    ConversationItemsRequest,
    ConversationUpdateRequest,
)

router = APIRouter(tags=["conversations"])


def _service(request: Request) -> ConversationService:
    service: ConversationService = request.app.state.conversations
    return service


def _json(model: object) -> Response:
    assert isinstance(model, BaseModel)
    return Response(dump(model), media_type="application/json")


@router.post("/v1/conversations", response_model=None)
async def create_conversation(
    body: ConversationCreateRequest, request: Request, owner: OwnerDep
) -> Response:
    return _json(await _service(request).create(owner, body.metadata, body.items))


@router.get("/v1/conversations/{conversation_id}", response_model=None)
async def retrieve_conversation(
    conversation_id: str, request: Request, owner: OwnerDep
) -> Response:
    return _json(await _service(request).retrieve(owner, conversation_id))


@router.post("/v1/conversations/{conversation_id}", response_model=None)
async def update_conversation(
    conversation_id: str, body: ConversationUpdateRequest, request: Request, owner: OwnerDep
) -> Response:
    return _json(await _service(request).update(owner, conversation_id, body.metadata))


@router.delete("/v1/conversations/{conversation_id}", response_model=None)
async def delete_conversation(conversation_id: str, request: Request, owner: OwnerDep) -> Response:
    return _json(await _service(request).delete(owner, conversation_id))


@router.post("/v1/conversations/{conversation_id}/items", response_model=None)
async def create_items(
    conversation_id: str, body: ConversationItemsRequest, request: Request, owner: OwnerDep
) -> Response:
    return _json(await _service(request).add_items(owner, conversation_id, body.items))


@router.get("/v1/conversations/{conversation_id}/items", response_model=None)
async def list_items(
    conversation_id: str,
    request: Request,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Response:
    return _json(
        await _service(request).list_items(
            owner, conversation_id, order=order, after=after, limit=limit
        )
    )


@router.get("/v1/conversations/{conversation_id}/items/{item_id}", response_model=None)
async def retrieve_item(
    conversation_id: str, item_id: str, request: Request, owner: OwnerDep
) -> Response:
    return _json(await _service(request).get_item(owner, conversation_id, item_id))


@router.delete("/v1/conversations/{conversation_id}/items/{item_id}", response_model=None)
async def delete_item(
    conversation_id: str, item_id: str, request: Request, owner: OwnerDep
) -> Response:
    return _json(await _service(request).delete_item(owner, conversation_id, item_id))
