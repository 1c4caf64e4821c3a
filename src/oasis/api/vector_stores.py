"""``/v1/vector_stores``: stores, their files, file batches and search."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response

from oasis.api.deps import OwnerDep, VectorStoresDep
from oasis.api.listing import json_body, page_query
from oasis.store.pagination import PageQuery
from oasis.wire.vector_stores import (
    FileBatchCreateRequest,
    SearchRequest,
    VectorStoreCreateRequest,
    VectorStoreFileCreateRequest,
    VectorStoreFileUpdateRequest,
    VectorStoreUpdateRequest,
)

router = APIRouter(tags=["vector_stores"])

StorePage = Annotated[PageQuery, Depends(page_query(before=True))]
FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]
# Polling helpers sleep this long between polls when the caller gave no interval.
POLL = {"openai-poll-after-ms": "200"}


@router.post("/v1/vector_stores", response_model=None)
async def create_store(
    body: VectorStoreCreateRequest, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return json_body(await service.create(owner, body))


@router.get("/v1/vector_stores", response_model=None)
async def list_stores(service: VectorStoresDep, owner: OwnerDep, page: StorePage) -> Response:
    return json_body(await service.list_stores(owner, page))


@router.get("/v1/vector_stores/{store_id}", response_model=None)
async def retrieve_store(store_id: str, service: VectorStoresDep, owner: OwnerDep) -> Response:
    return json_body(await service.retrieve(owner, store_id), POLL)


@router.post("/v1/vector_stores/{store_id}", response_model=None)
async def update_store(
    store_id: str, body: VectorStoreUpdateRequest, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return json_body(await service.update(owner, store_id, body))


@router.delete("/v1/vector_stores/{store_id}", response_model=None)
async def delete_store(store_id: str, service: VectorStoresDep, owner: OwnerDep) -> Response:
    return json_body(await service.delete(owner, store_id))


@router.post("/v1/vector_stores/{store_id}/search", response_model=None)
async def search_store(
    store_id: str, body: SearchRequest, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return json_body(await service.search(owner, store_id, body))


@router.post("/v1/vector_stores/{store_id}/files", response_model=None)
async def create_file(
    store_id: str, body: VectorStoreFileCreateRequest, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return json_body(
        await service.create_file(
            owner, store_id, body.file_id, body.attributes, body.chunking_strategy
        )
    )


@router.get("/v1/vector_stores/{store_id}/files", response_model=None)
async def list_files(
    store_id: str,
    service: VectorStoresDep,
    owner: OwnerDep,
    page: StorePage,
    filter: FileStatus | None = None,  # noqa: A002 - the API's name
) -> Response:
    return json_body(await service.list_files(owner, store_id, page, status=filter))


@router.get("/v1/vector_stores/{store_id}/files/{file_id}", response_model=None)
async def retrieve_file(
    store_id: str, file_id: str, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return json_body(await service.retrieve_file(owner, store_id, file_id), POLL)


@router.post("/v1/vector_stores/{store_id}/files/{file_id}", response_model=None)
async def update_file(
    store_id: str,
    file_id: str,
    body: VectorStoreFileUpdateRequest,
    service: VectorStoresDep,
    owner: OwnerDep,
) -> Response:
    return json_body(await service.update_file(owner, store_id, file_id, body.attributes))


@router.delete("/v1/vector_stores/{store_id}/files/{file_id}", response_model=None)
async def delete_file(
    store_id: str, file_id: str, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return json_body(await service.delete_file(owner, store_id, file_id))


@router.get("/v1/vector_stores/{store_id}/files/{file_id}/content", response_model=None)
async def file_content(
    store_id: str, file_id: str, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return json_body(await service.file_content(owner, store_id, file_id))


@router.post("/v1/vector_stores/{store_id}/file_batches", response_model=None)
async def create_batch(
    store_id: str, body: FileBatchCreateRequest, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return json_body(await service.create_batch(owner, store_id, body))


@router.get("/v1/vector_stores/{store_id}/file_batches/{batch_id}", response_model=None)
async def retrieve_batch(
    store_id: str, batch_id: str, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return json_body(await service.retrieve_batch(owner, store_id, batch_id), POLL)


@router.post("/v1/vector_stores/{store_id}/file_batches/{batch_id}/cancel", response_model=None)
async def cancel_batch(
    store_id: str, batch_id: str, service: VectorStoresDep, owner: OwnerDep
) -> Response:
    return json_body(await service.cancel_batch(owner, store_id, batch_id))


@router.get("/v1/vector_stores/{store_id}/file_batches/{batch_id}/files", response_model=None)
async def list_batch_files(
    store_id: str,
    batch_id: str,
    service: VectorStoresDep,
    owner: OwnerDep,
    page: StorePage,
    filter: FileStatus | None = None,  # noqa: A002 - the API's name
) -> Response:
    await service.retrieve_batch(owner, store_id, batch_id)
    return json_body(
        await service.list_files(owner, store_id, page, status=filter, batch_id=batch_id)
    )
