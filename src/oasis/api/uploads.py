"""``/v1/uploads``: create an upload, add its parts (multipart ``data``), complete, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from oasis.api.deps import OwnerDep, UploadsDep
from oasis.api.forms import read_form, split_form
from oasis.api.listing import json_body
from oasis.errors import InvalidRequestError
from oasis.wire.files import UploadCompleteRequest, UploadCreateRequest

router = APIRouter(tags=["uploads"])


@router.post("/v1/uploads", response_model=None)
async def create_upload(
    body: UploadCreateRequest, uploads: UploadsDep, owner: OwnerDep
) -> Response:
    return json_body(await uploads.create(owner, body))


@router.post("/v1/uploads/{upload_id}/parts", response_model=None)
async def add_part(
    upload_id: str, request: Request, uploads: UploadsDep, owner: OwnerDep
) -> Response:
    form = await read_form(request, "the part's bytes in the `data` field", max_files=1)
    try:
        _, parts = split_form(form, files={"data"})
        if not parts:
            raise InvalidRequestError(
                "Missing required parameter: 'data'.",
                param="data",
                code="missing_required_parameter",
            )
        part = await uploads.add_part(owner, upload_id, parts[0][1].file)
    finally:
        await form.close()
    return json_body(part)


@router.post("/v1/uploads/{upload_id}/complete", response_model=None)
async def complete_upload(
    upload_id: str, body: UploadCompleteRequest, uploads: UploadsDep, owner: OwnerDep
) -> Response:
    return json_body(await uploads.complete(owner, upload_id, body.part_ids, body.md5))


@router.post("/v1/uploads/{upload_id}/cancel", response_model=None)
async def cancel_upload(upload_id: str, uploads: UploadsDep, owner: OwnerDep) -> Response:
    return json_body(await uploads.cancel(owner, upload_id))
