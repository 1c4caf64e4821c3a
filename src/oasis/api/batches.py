"""``/v1/batches``: create, retrieve, list and cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from oasis.api.deps import BatchesDep, OwnerDep
from oasis.api.listing import json_body, page_query
from oasis.store.pagination import PageQuery
from oasis.wire.batches import BatchCreateRequest

router = APIRouter(tags=["batches"])

# Newest first, always: the endpoint takes no ``order``.
BatchPage = Annotated[PageQuery, Depends(page_query(order=None))]


@router.post("/v1/batches", response_model=None)
async def create_batch(body: BatchCreateRequest, batches: BatchesDep, owner: OwnerDep) -> Response:
    return json_body(await batches.create(owner, body))


@router.get("/v1/batches", response_model=None)
async def list_batches(batches: BatchesDep, owner: OwnerDep, page: BatchPage) -> Response:
    return json_body(await batches.list(owner, page))


@router.get("/v1/batches/{batch_id}", response_model=None)
async def retrieve_batch(batch_id: str, batches: BatchesDep, owner: OwnerDep) -> Response:
    return json_body(await batches.get(owner, batch_id))


@router.post("/v1/batches/{batch_id}/cancel", response_model=None)
async def cancel_batch(batch_id: str, batches: BatchesDep, owner: OwnerDep) -> Response:
    return json_body(await batches.cancel(owner, batch_id))
