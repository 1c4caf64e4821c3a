"""Speech-to-text requests for a model on another server (a ``SpeechToTextRelay``).

The request is validated here as for a local model; the file and the fields go on as the
client sent them, and the server's answer comes back in the format asked for (its
timestamps, segments and words are its own). Streamed transcripts are relayed event by
event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from openai.types.audio import (
    Transcription,
    TranscriptionDiarized,
    TranscriptionStreamEvent,
    TranscriptionTextDoneEvent,
    TranscriptionVerbose,
    Translation,
    TranslationVerbose,
)
from pydantic import BaseModel, TypeAdapter, ValidationError

from oasis.caller import UsageEntry, record_usage
from oasis.engines.base import AudioFile, RelayedAnswer, SpeechToTextRelay
from oasis.errors import EngineUnreachableError, PayloadTooLargeError
from oasis.wire.audio import TranscriptionRequest, TranslationRequest

_STREAM_EVENT: TypeAdapter[TranscriptionStreamEvent] = TypeAdapter(TranscriptionStreamEvent)
_TEXT_FORMATS = {"text", "srt", "vtt"}
_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("transcribe", "json"): Transcription,
    ("transcribe", "verbose_json"): TranscriptionVerbose,
    ("transcribe", "diarized_json"): TranscriptionDiarized,
    ("translate", "json"): Translation,
    ("translate", "verbose_json"): TranslationVerbose,
}


def relay_fields(request: BaseModel) -> dict[str, Any]:
    """The fields of ``request`` the client set, as OpenAI names them, without ``model``
    (the relay sends the server's own name for it)."""
    return {
        name: value
        for name in type(request).model_fields
        if name != "model" and (value := getattr(request, name)) is not None
    }


def read_upload(file: Any, size: int | None, filename: str | None, limit: int) -> AudioFile:
    """The uploaded file as bytes, refused with a 413 past ``limit``."""
    if size is None or size <= limit:
        file.seek(0)
        data = file.read(limit + 1)
        size = len(data)
    if size > limit:
        raise PayloadTooLargeError(
            f"The file is {size} bytes; the limit is {limit} bytes ({limit // (1024 * 1024)} MB).",
            param="file",
        )
    return AudioFile(data, filename or "audio")


async def relayed_transcript(
    engine: SpeechToTextRelay,
    request: TranscriptionRequest | TranslationRequest,
    audio: AudioFile,
) -> BaseModel | str:
    """The server's transcript (or translation) of ``audio``, in ``response_format``."""
    task = "translate" if isinstance(request, TranslationRequest) else "transcribe"
    response_format = request.response_format or "json"
    answer = await engine.transcribe_file(task, relay_fields(request), audio)
    try:
        raw = await answer.read()
    finally:
        await answer.aclose()
    model_id = engine.spec.id
    if response_format in _TEXT_FORMATS:
        await record_usage(UsageEntry("audio_transcriptions", model_id))
        return raw.decode("utf-8", errors="replace")
    body_type = _BODIES.get((task, response_format), Transcription)
    try:
        body = body_type.model_validate_json(raw)
    except ValidationError as exc:
        raise EngineUnreachableError(
            f"The engine of `{model_id}` sent a {response_format} answer that does not "
            f"read as one: {exc.errors()[0]['msg']}."
        ) from exc
    await record_usage(_usage(model_id, json.loads(raw)))
    return body


async def relayed_events(
    engine: SpeechToTextRelay, request: TranscriptionRequest, audio: AudioFile
) -> AsyncIterator[TranscriptionStreamEvent]:
    """Send the request now (its refusal is still a status) and relay its events."""
    answer = await engine.transcribe_file("transcribe", relay_fields(request), audio)
    return _events(engine.spec.id, answer)


async def _events(model_id: str, answer: RelayedAnswer) -> AsyncIterator[TranscriptionStreamEvent]:
    try:
        async for payload in answer.events():
            try:
                event = _STREAM_EVENT.validate_python(payload)
            except ValidationError as exc:
                raise EngineUnreachableError(
                    f"The engine of `{model_id}` sent a stream event that does not read as "
                    f"one: {exc.errors()[0]['msg']}."
                ) from exc
            if isinstance(event, TranscriptionTextDoneEvent):
                await record_usage(_usage(model_id, payload))
            yield event
    finally:
        await answer.aclose()


def _usage(model_id: str, body: dict[str, Any]) -> UsageEntry:
    """What the server says the request used: tokens, or seconds of audio."""
    usage = body.get("usage") if isinstance(body, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    seconds = usage.get("seconds", body.get("duration") if isinstance(body, dict) else None)
    return UsageEntry(
        "audio_transcriptions",
        model_id,
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        seconds=float(seconds or 0.0),
    )
