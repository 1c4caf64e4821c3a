"""The two ends of every streaming endpoint's policy.

Start: the first event is produced before the HTTP response starts, so refusals stay
status codes (:func:`begun`). Failure: once the first byte is out, the status code is
spent, so any exception after it — ours or not — is logged and becomes the endpoint's
terminal error event (an ``error`` frame for chat and completions, ``response.failed``
for Responses), never a cut connection (:func:`guarded`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from oasis.errors import OasisError

log = logging.getLogger(__name__)

T = TypeVar("T")

SERVER_ERROR = "The server had an error while streaming the response."


async def begun(events: AsyncIterator[T]) -> AsyncIterator[T]:
    """``events`` with its first item already produced.

    Producing it queues the generation on its engine, so a full queue, a queue-wait limit
    or a model that cannot load still raises here, before the first byte goes out, and
    becomes a status code (503 with ``Retry-After``) rather than an error frame.
    """
    try:
        first = await anext(events)
    except StopAsyncIteration:
        return _empty()
    except BaseException:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    return _prepend(first, events)


async def _empty() -> AsyncIterator[T]:
    return
    yield


async def _prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


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
