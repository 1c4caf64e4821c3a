"""The one stream-failure policy of every streaming endpoint.

Once the first byte of a stream is out, its status code is spent: any exception after
that — ours or not — is logged and becomes the endpoint's terminal error event (an
``error`` frame for chat and completions, ``response.failed`` for Responses), never a
cut connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from oasis.errors import OasisError

log = logging.getLogger(__name__)

T = TypeVar("T")

SERVER_ERROR = "The server had an error while streaming the response."


def failure_message(exc: Exception) -> str:
    """What the client is told: our own errors say what went wrong, others do not."""
    return exc.message if isinstance(exc, OasisError) else SERVER_ERROR


async def guarded(
    events: AsyncIterator[T], on_failure: Callable[[Exception], AsyncIterator[T]]
) -> AsyncIterator[T]:
    """``events``, then — if they raise — the terminal events ``on_failure`` makes."""
    try:
        async for event in events:
            yield event
    except Exception as exc:
        if isinstance(exc, OasisError):
            log.warning("stream failed: %s", exc.message)
        else:
            log.exception("stream failed")
        async for event in on_failure(exc):
            yield event
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
