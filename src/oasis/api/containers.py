"""``/v1/containers``: containers, and their files (upload or copy in, list, read, delete)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from oasis.api.deps import ContainersDep, OwnerDep
from oasis.api.forms import read_form, split_form, validate_fields
from oasis.api.listing import json_body, page_query
from oasis.errors import InvalidRequestError
from oasis.store.pagination import PageQuery
from oasis.wire.containers import ContainerCreateRequest, ContainerFileCreateRequest

router = APIRouter(tags=["containers"])

ContainerPage = Annotated[PageQuery, Depends(page_query())]


@router.post("/v1/containers", response_model=None)
async def create_container(
    body: ContainerCreateRequest, service: ContainersDep, owner: OwnerDep
) -> Response:
    return json_body(await service.create(owner, body))


@router.get("/v1/containers", response_model=None)
async def list_containers(
    service: ContainersDep, owner: OwnerDep, page: ContainerPage, name: str | None = None
) -> Response:
    return json_body(await service.list_containers(owner, page, name=name))


@router.get("/v1/containers/{container_id}", response_model=None)
async def retrieve_container(
    container_id: str, service: ContainersDep, owner: OwnerDep
) -> Response:
    return json_body(await service.get(owner, container_id))


@router.delete("/v1/containers/{container_id}", response_model=None)
async def delete_container(container_id: str, service: ContainersDep, owner: OwnerDep) -> Response:
    return json_body(await service.delete(owner, container_id))


@router.post("/v1/containers/{container_id}/files", response_model=None)
async def create_container_file(
    container_id: str, request: Request, service: ContainersDep, owner: OwnerDep
) -> Response:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await read_form(request, "the bytes in the `file` field")
        try:
            _, uploads = split_form(form, files={"file"})
            if len(uploads) != 1:
                raise InvalidRequestError(
                    "Send exactly one file in the `file` field (or JSON with a `file_id`).",
                    param="file",
                    code="missing_required_parameter" if not uploads else "invalid_value",
                )
            upload = uploads[0][1]
            created = await service.add_upload(
                owner, container_id, upload.filename or "upload", upload.file
            )
        finally:
            await form.close()
        return json_body(created)
    try:
        fields = await request.json()
    except (ValueError, RecursionError) as exc:  # not JSON, or nested past the parser
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": ""}]
        ) from exc
    if not isinstance(fields, dict) or "file_id" not in fields:
        raise InvalidRequestError(
            "Send a file: multipart with a `file` field, or JSON with a `file_id`.",
            param="file_id",
            code="missing_required_parameter",
        )
    body = validate_fields(ContainerFileCreateRequest, fields)
    return json_body(await service.add_file(owner, container_id, body.file_id))


@router.get("/v1/containers/{container_id}/files", response_model=None)
async def list_container_files(
    container_id: str, service: ContainersDep, owner: OwnerDep, page: ContainerPage
) -> Response:
    return json_body(await service.list_files(owner, container_id, page))


@router.get("/v1/containers/{container_id}/files/{file_id}", response_model=None)
async def retrieve_container_file(
    container_id: str, file_id: str, service: ContainersDep, owner: OwnerDep
) -> Response:
    return json_body(await service.get_file(owner, container_id, file_id))


@router.delete("/v1/containers/{container_id}/files/{file_id}", response_model=None)
async def delete_container_file(
    container_id: str, file_id: str, service: ContainersDep, owner: OwnerDep
) -> Response:
    return json_body(await service.delete_file(owner, container_id, file_id))


@router.get("/v1/containers/{container_id}/files/{file_id}/content", response_model=None)
async def container_file_content(
    container_id: str, file_id: str, service: ContainersDep, owner: OwnerDep
) -> Response:
    size, chunks = await service.file_content(owner, container_id, file_id)
    return StreamingResponse(
        chunks, media_type="application/octet-stream", headers={"content-length": str(size)}
    )
