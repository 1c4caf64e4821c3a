"""Server-sent events: ``data: <json>`` frames, flushed one by one.

Once the first byte is out the status code is spent, so an error mid-stream becomes a
``data: {"error": …}`` frame, which the SDK raises as ``APIError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from oasis.api.errors import error_json
from oasis.errors import OasisError
from oasis.services.streams import failure_message, guarded, in_runs
from oasis.wire.base import dump

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(data: str | bytes, event: str | None = None) -> bytes:
    """One SSE frame: ``data: <json>``, after an ``event: <type>`` line when named."""
    body = data.encode() if isinstance(data, str) else data
    head = f"event: {event}\n".encode() if event is not None else b""
    return head + b"data: " + body + b"\n\n"


async def _error_frame(exc: Exception) -> AsyncIterator[bytes]:
    error = exc if isinstance(exc, OasisError) else OasisError(failure_message(exc))
    yield frame(error_json(error))


async def _payloads(
    events: AsyncIterator[BaseModel], done_marker: bool, named: bool
) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            yield frame(dump(event), getattr(event, "type", None) if named else None)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    if done_marker:
        yield frame("[DONE]")


def _frames(
    events: AsyncIterator[BaseModel], done_marker: bool, named: bool
) -> AsyncIterator[bytes]:
    # A failed stream ends with its error frame and no [DONE].
    return guarded(_payloads(events, done_marker, named), _error_frame)


def sse_response(
    events: AsyncIterator[BaseModel], *, done_marker: bool = True, named: bool = False
) -> StreamingResponse:
    """Stream ``events`` as SSE. ``named`` adds ``event: <type>`` lines (Responses style)."""
    return _streaming(_frames(events, done_marker, named))


async def _encoded_frames(events: AsyncIterator[tuple[int, str, str]]) -> AsyncIterator[bytes]:
    # The events made back to back go out in one write (see ``in_runs``); a finished item
    # goes out before the work that follows it (the next step's prompt, after a tool call).
    async for run in in_runs(events, flush=_ends_item):
        yield b"".join(frame(data, kind) for _seq, kind, data in run)


def _ends_item(event: tuple[int, str, str]) -> bool:
    return event[1] == "response.output_item.done"


def encoded_sse_response(events: AsyncIterator[tuple[int, str, str]]) -> StreamingResponse:
    """Stream events already encoded as ``(sequence_number, type, JSON)``, named by type.

    Their producer owns failures: a Responses stream ends itself with ``response.failed``.
    """
    return _streaming(_encoded_frames(events))


def _streaming(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)
