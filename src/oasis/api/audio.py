"""``POST /v1/audio/speech``, ``/v1/audio/transcriptions`` and ``/v1/audio/translations``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.datastructures import FormData

from oasis.api.deps import SpeechDep, TranscriptionDep
from oasis.api.forms import read_form, split_form, validate_fields
from oasis.api.sse import SSE_HEADERS, sse_response
from oasis.errors import InvalidRequestError
from oasis.services.audio.transcription import Upload
from oasis.wire.audio import SpeechRequest, TranscriptionRequest, TranslationRequest
from oasis.wire.base import dump

router = APIRouter(tags=["audio"])

M = TypeVar("M", bound=BaseModel)


@router.post("/v1/audio/speech", response_model=None)
async def create_speech(body: SpeechRequest, speech: SpeechDep) -> Response:
    job = await speech.prepare(body)
    if body.stream_format == "sse":
        return sse_response(speech.events(job), done_marker=False)
    # No Content-Length: the body goes out chunked, a sentence at a time.
    return StreamingResponse(speech.audio(job), media_type=job.media_type, headers=SSE_HEADERS)


async def _read_form(request: Request) -> FormData:
    return await read_form(request, "the audio in the `file` field")


def _parse(form: FormData, model: type[M]) -> tuple[M, Upload]:
    """The form's scalar fields as ``model`` (400s name the field) and its ``file``."""
    fields, files = split_form(form, files={"file"})
    body = validate_fields(model, fields)
    if not files:
        raise InvalidRequestError(
            "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )
    file = files[0][1]
    return body, Upload(file.file, file.size, file.filename)


def _respond(result: BaseModel | str) -> Response:
    if isinstance(result, str):
        return Response(result, media_type="text/plain; charset=utf-8")
    return Response(dump(result), media_type="application/json")


async def _closing(events: AsyncIterator[Any], form: FormData) -> AsyncIterator[Any]:
    """``events``, then the upload's temporary file is closed (the stream outlives the route)."""
    try:
        async for event in events:
            yield event
    finally:
        await events.aclose()  # type: ignore[attr-defined]
        await form.close()


@router.post("/v1/audio/transcriptions", response_model=None)
async def create_transcription(request: Request, service: TranscriptionDep) -> Response:
    form = await _read_form(request)
    streaming = False
    try:
        body, upload = _parse(form, TranscriptionRequest)
        if body.stream:
            events = await service.stream(body, upload)
            streaming = True
            return sse_response(_closing(events, form), done_marker=False)
        return _respond(await service.answer(body, upload))
    finally:
        if not streaming:
            await form.close()


@router.post("/v1/audio/translations", response_model=None)
async def create_translation(request: Request, service: TranscriptionDep) -> Response:
    form = await _read_form(request)
    try:
        body, upload = _parse(form, TranslationRequest)
        return _respond(await service.answer(body, upload))
    finally:
        await form.close()
