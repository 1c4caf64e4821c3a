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
from oasis.services.streams import failure_message, guarded
from oasis.wire.base import dump

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _error_frame(exc: Exception) -> AsyncIterator[bytes]:
    error = exc if isinstance(exc, OasisError) else OasisError(failure_message(exc))
    yield b"data: " + error_json(error) + b"\n\n"


async def _payloads(
    events: AsyncIterator[BaseModel], done_marker: bool, named: bool
) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            payload = dump(event)
            if named:
                name = getattr(event, "type", None)
                yield f"event: {name}\ndata: {payload}\n\n".encode()
            else:
                yield f"data: {payload}\n\n".encode()
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    if done_marker:
        yield b"data: [DONE]\n\n"


def _frames(
    events: AsyncIterator[BaseModel], done_marker: bool, named: bool
) -> AsyncIterator[bytes]:
    # A failed stream ends with its error frame and no [DONE].
    return guarded(_payloads(events, done_marker, named), _error_frame)


def sse_response(
    events: AsyncIterator[BaseModel], *, done_marker: bool = True, named: bool = False
) -> StreamingResponse:
    """Stream ``events`` as SSE. ``named`` adds ``event: <type>`` lines (Responses style)."""
    return StreamingResponse(
        _frames(events, done_marker, named), media_type="text/event-stream", headers=SSE_HEADERS
    )
