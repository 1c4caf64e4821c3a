"""``/v1/batches``: create, retrieve, list and cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from oasis.api.deps import BatchesDep, OwnerDep
from oasis.api.listing import json_body
from oasis.wire.batches import BatchCreateRequest

router = APIRouter(tags=["batches"])


@router.post("/v1/batches", response_model=None)
async def create_batch(body: BatchCreateRequest, batches: BatchesDep, owner: OwnerDep) -> Response:
    return json_body(await batches.create(owner, body))


@router.get("/v1/batches", response_model=None)
async def list_batches(
    batches: BatchesDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> Response:
    return json_body(await batches.list(owner, after=after, limit=limit))


@router.get("/v1/batches/{batch_id}", response_model=None)
async def retrieve_batch(batch_id: str, batches: BatchesDep, owner: OwnerDep) -> Response:
    return json_body(await batches.get(owner, batch_id))


@router.post("/v1/batches/{batch_id}/cancel", response_model=None)
async def cancel_batch(batch_id: str, batches: BatchesDep, owner: OwnerDep) -> Response:
    return json_body(await batches.cancel(owner, batch_id))
