"""``/v1/vector_stores``: stores, their files, file batches and search."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from oasis.api.deps import OwnerDep, VectorStoresDep
from oasis.wire.base import dump
from oasis.wire.vector_stores import (
    FileBatchCreateRequest,
    SearchRequest,
    VectorStoreCreateRequest,
    VectorStoreFileCreateRequest,
    VectorStoreFileUpdateRequest,
    VectorStoreUpdateRequest,
)

router = APIRouter(tags=["vector_stores"])

Limit = Annotated[int, Query(ge=1, le=100)]
Order = Literal["asc", "desc"]
FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]
# Polling helpers sleep this long between polls when the caller gave no interval.
POLL_AFTER_MS = "200"


def _json(value: BaseModel | dict[str, Any], *, poll: bool = False) -> Response:
    body = dump(value) if isinstance(value, BaseModel) else json.dumps(value)
    headers = {"openai-poll-after-ms": POLL_AFTER_MS} if poll else None
    return Response(body, media_type="application/json", headers=headers)


@router.post("/v1/vector_stores", response_model=None)
async def create_store(
    body: VectorStoreCreateRequest, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return _json(await service.create(owner, body))


@router.get("/v1/vector_stores", response_model=None)
async def list_stores(
    service: VectorStoresDep,
    owner: OwnerDep,
    limit: Limit = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
) -> Response:
    return _json(
        await service.list_stores(owner, order=order, after=after, limit=limit, before=before)
    )


@router.get("/v1/vector_stores/{store_id}", response_model=None)
async def retrieve_store(store_id: str, service: VectorStoresDep, owner: OwnerDep) -> Response:
    return _json(await service.retrieve(owner, store_id), poll=True)


@router.post("/v1/vector_stores/{store_id}", response_model=None)
async def update_store(
    store_id: str, body: VectorStoreUpdateRequest, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return _json(await service.update(owner, store_id, body))


@router.delete("/v1/vector_stores/{store_id}", response_model=None)
async def delete_store(store_id: str, service: VectorStoresDep, owner: OwnerDep) -> Response:
    return _json(await service.delete(owner, store_id))


@router.post("/v1/vector_stores/{store_id}/search", response_model=None)
async def search_store(
    store_id: str, body: SearchRequest, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return _json(await service.search(owner, store_id, body))


@router.post("/v1/vector_stores/{store_id}/files", response_model=None)
async def create_file(
    store_id: str, body: VectorStoreFileCreateRequest, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return _json(
        await service.create_file(
            owner, store_id, body.file_id, body.attributes, body.chunking_strategy
        )
    )


@router.get("/v1/vector_stores/{store_id}/files", response_model=None)
async def list_files(
    store_id: str,
    service: VectorStoresDep,
    owner: OwnerDep,
    limit: Limit = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
    filter: FileStatus | None = None,  # noqa: A002 - the API's name
) -> Response:
    return _json(
        await service.list_files(
            owner, store_id, status=filter, order=order, after=after, limit=limit, before=before
        )
    )


@router.get("/v1/vector_stores/{store_id}/files/{file_id}", response_model=None)
async def retrieve_file(
    store_id: str, file_id: str, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return _json(await service.retrieve_file(owner, store_id, file_id), poll=True)


@router.post("/v1/vector_stores/{store_id}/files/{file_id}", response_model=None)
async def update_file(
    store_id: str,
    file_id: str,
    body: VectorStoreFileUpdateRequest,
    service: VectorStoresDep,
    owner: OwnerDep,
) -> Response:
    return _json(await service.update_file(owner, store_id, file_id, body.attributes))


@router.delete("/v1/vector_stores/{store_id}/files/{file_id}", response_model=None)
async def delete_file(
    store_id: str, file_id: str, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return _json(await service.delete_file(owner, store_id, file_id))


@router.get("/v1/vector_stores/{store_id}/files/{file_id}/content", response_model=None)
async def file_content(
    store_id: str, file_id: str, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return _json(await service.file_content(owner, store_id, file_id))


@router.post("/v1/vector_stores/{store_id}/file_batches", response_model=None)
async def create_batch(
    store_id: str, body: FileBatchCreateRequest, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return _json(await service.create_batch(owner, store_id, body))


@router.get("/v1/vector_stores/{store_id}/file_batches/{batch_id}", response_model=None)
async def retrieve_batch(
    store_id: str, batch_id: str, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return _json(await service.retrieve_batch(owner, store_id, batch_id), poll=True)


@router.post("/v1/vector_stores/{store_id}/file_batches/{batch_id}/cancel", response_model=None)
async def cancel_batch(
    store_id: str, batch_id: str, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return _json(await service.cancel_batch(owner, store_id, batch_id))


@router.get("/v1/vector_stores/{store_id}/file_batches/{batch_id}/files", response_model=None)
async def list_batch_files(
    store_id: str,
    batch_id: str,
    service: VectorStoresDep,
    owner: OwnerDep,
    limit: Limit = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
    filter: FileStatus | None = None,  # noqa: A002 - the API's name
) -> Response:
    await service.retrieve_batch(owner, store_id, batch_id)
    return _json(
        await service.list_files(
            owner,
            store_id,
            status=filter,
            order=order,
            after=after,
            limit=limit,
            batch_id=batch_id,
            before=before,
        )
    )
