"""``/v1/responses``: create, retrieve (or replay as a stream), delete, cancel, input items,
input tokens and compact."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from openai.types.responses import ResponseItemList

from oasis.api.deps import IncludeDep, OwnerDep, ResponsesDep
from oasis.api.listing import json_body, page_query
from oasis.api.sse import encoded_sse_response
from oasis.responses.items import RESPONSE_ITEM
from oasis.store.pagination import PageQuery
from oasis.wire.base import deleted
from oasis.wire.responses import ResponseCreateRequest

router = APIRouter(tags=["responses"])

ItemPage = Annotated[PageQuery, Depends(page_query())]


@router.post("/v1/responses", response_model=None)
async def create_response(
    body: ResponseCreateRequest, service: ResponsesDep, owner: OwnerDep
) -> Response:
    if body.stream:
        return encoded_sse_response(await service.stream(body, owner))
    return json_body(await service.create(body, owner))


@router.post("/v1/responses/input_tokens", response_model=None)
async def count_input_tokens(
    body: ResponseCreateRequest, service: ResponsesDep, owner: OwnerDep
) -> Response:
    return json_body(await service.input_tokens(body, owner))


@router.post("/v1/responses/compact", response_model=None)
async def compact_conversation(
    body: ResponseCreateRequest, service: ResponsesDep, owner: OwnerDep
) -> Response:
    return json_body(await service.compact(body, owner))


@router.get("/v1/responses/{response_id}", response_model=None)
async def retrieve_response(
    response_id: str,
    service: ResponsesDep,
    owner: OwnerDep,
    include: IncludeDep,
    stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=-1)] = None,
) -> Response:
    if stream:
        return encoded_sse_response(await service.replay(response_id, owner, starting_after))
    return json_body(await service.retrieve(response_id, owner, include))


@router.delete("/v1/responses/{response_id}", response_model=None)
async def delete_response(response_id: str, service: ResponsesDep, owner: OwnerDep) -> Response:
    await service.delete(response_id, owner)
    return json_body(deleted(response_id, "response"))


@router.post("/v1/responses/{response_id}/cancel", response_model=None)
async def cancel_response(response_id: str, service: ResponsesDep, owner: OwnerDep) -> Response:
    return json_body(await service.cancel(response_id, owner))


@router.get("/v1/responses/{response_id}/input_items", response_model=None)
async def list_input_items(
    response_id: str,
    service: ResponsesDep,
    owner: OwnerDep,
    include: IncludeDep,
    query: ItemPage,
) -> Response:
    page = await service.input_items(response_id, owner, query, include)
    listing = ResponseItemList(
        object="list",
        data=[RESPONSE_ITEM.validate_python(item) for item in page.data],
        first_id=str(page.data[0]["id"]) if page.data else "",
        last_id=str(page.data[-1]["id"]) if page.data else "",
        has_more=page.has_more,
    )
    return json_body(listing)
