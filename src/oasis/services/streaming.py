"""Starting a stream before its HTTP response does, so refusals stay status codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


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
