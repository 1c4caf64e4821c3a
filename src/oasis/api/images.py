"""``POST /v1/images/generations``, ``/edits``, ``/variations``; ``GET /v1/images/files/{name}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from starlette.datastructures import FormData

from oasis.api.deps import ImagesDep
from oasis.api.forms import split_form, validate_fields
from oasis.api.sse import sse_response
from oasis.services.images import EditUploads, PreparedImages
from oasis.services.imaging import MEDIA_TYPES
from oasis.wire.base import dump
from oasis.wire.images import ImageEditRequest, ImageGenerationRequest, ImageVariationRequest

router = APIRouter(tags=["images"])


async def _respond(
    prepared: PreparedImages, stream: bool | None, request: Request, images: ImagesDep
) -> Response:
    if stream:
        return sse_response(images.stream(prepared), done_marker=False, named=True)
    result = await images.create(prepared, str(request.base_url))
    return Response(dump(result), media_type="application/json")


@router.post("/v1/images/generations", response_model=None)
async def create_image(
    body: ImageGenerationRequest, request: Request, images: ImagesDep
) -> Response:
    prepared = await images.prepare_generation(body)
    return await _respond(prepared, body.stream, request, images)


async def _read_multipart(form: FormData) -> tuple[dict[str, Any], EditUploads]:
    """The form's scalar fields (folded like any multipart body) and its picture files."""
    # The SDK's `markup` file is accepted and not used.
    fields, files = split_form(form, files={"image", "image[]", "mask"}, ignored={"markup"})
    pictures = [await upload.read() for key, upload in files if key != "mask"]
    masks = [upload for key, upload in files if key == "mask"]
    mask = await masks[-1].read() if masks else None
    return fields, EditUploads(images=pictures, mask=mask)


async def _edit_fields(request: Request) -> tuple[Any, EditUploads]:
    """An edit's fields and uploads: a JSON body (data URLs), else a multipart form."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            return await request.json(), EditUploads(images=[])
        except (ValueError, RecursionError) as exc:  # not JSON, or nested past the parser
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": ""}]
            ) from exc
    form = await request.form(max_files=32)
    try:
        return await _read_multipart(form)
    finally:
        # The pictures are read into memory above: the spooled files can go now.
        await form.close()


@router.post("/v1/images/edits", response_model=None)
async def edit_image(request: Request, images: ImagesDep) -> Response:
    fields, uploads = await _edit_fields(request)
    body = validate_fields(ImageEditRequest, fields)
    prepared = await images.prepare_edit(body, uploads)
    return await _respond(prepared, body.stream, request, images)


@router.post("/v1/images/variations", response_model=None)
async def image_variation(request: Request, images: ImagesDep) -> Response:
    fields, uploads = await _edit_fields(request)
    body = validate_fields(ImageVariationRequest, fields)
    prepared = await images.prepare_variation(body, uploads)
    return await _respond(prepared, False, request, images)


@router.get("/v1/images/files/{name}")
async def image_file(name: str, images: ImagesDep) -> FileResponse:
    path = images.files.path(name)
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix.lstrip(".")])
