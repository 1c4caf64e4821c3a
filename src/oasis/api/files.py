"""``/v1/files``: upload (multipart), list, retrieve, delete, and the bytes back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from oasis.api.deps import FilesDep, OwnerDep
from oasis.api.forms import read_form, split_form, validate_fields
from oasis.api.listing import json_body, page_query
from oasis.errors import InvalidRequestError
from oasis.store.pagination import PageQuery
from oasis.wire.files import FileCreateForm

router = APIRouter(tags=["files"])


FilePage = Annotated[PageQuery, Depends(page_query(limit=10_000, most=10_000))]


@router.post("/v1/files", response_model=None)
async def create_file(request: Request, files: FilesDep, owner: OwnerDep) -> Response:
    form = await read_form(request, "the bytes in the `file` field and a `purpose`")
    try:
        fields, uploads = split_form(form, files={"file"})
        body = validate_fields(FileCreateForm, fields)
        if not uploads:
            raise InvalidRequestError(
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )
        if len(uploads) > 1:
            raise InvalidRequestError(
                "Only one file can be uploaded per request.", param="file", code="invalid_value"
            )
        upload = uploads[0][1]
        created = await files.create(
            owner,
            upload.filename or "upload",
            body.purpose,
            upload.file,
            body.expires_after.seconds if body.expires_after else None,
            quota_param="file",
        )
    finally:
        await form.close()
    return json_body(created)


@router.get("/v1/files", response_model=None)
async def list_files(
    files: FilesDep, owner: OwnerDep, page: FilePage, purpose: str | None = None
) -> Response:
    return json_body(await files.list(owner, page, purpose=purpose))


@router.get("/v1/files/{file_id}", response_model=None)
async def retrieve_file(file_id: str, files: FilesDep, owner: OwnerDep) -> Response:
    return json_body(await files.get(owner, file_id))


@router.delete("/v1/files/{file_id}", response_model=None)
async def delete_file(file_id: str, files: FilesDep, owner: OwnerDep) -> Response:
    return json_body(await files.delete(owner, file_id))


@router.get("/v1/files/{file_id}/content", response_model=None)
async def file_content(file_id: str, files: FilesDep, owner: OwnerDep) -> Response:
    # The bytes whatever the Accept header asks for: the SDK sends application/binary,
    # and application/json from the deprecated retrieve_content().
    info, chunks = await files.stream(owner, file_id)
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"content-length": str(info.bytes)},
    )
