"""A request's generation streams: started before its HTTP response, read together, and
ended by one failure policy.

Start: :func:`begun` produces a stream's first item before the response starts, so
refusals stay status codes. Together: :class:`Interleaved` reads several generations of
one request (its choices) as they produce. Failure: once the first byte is out, the status
code is spent, so any exception after it — ours or not — is logged and becomes the
endpoint's terminal error event (an ``error`` frame for chat and completions,
``response.failed`` for Responses), never a cut connection (:func:`guarded`).
Delivery: :func:`in_runs` hands a writer, at once, every event made while it was busy, so
events made back to back (a tool's item opening, then its progress) go out in one write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from oasis.core.backend import EventStream
from oasis.core.events import GenerationEvent
from oasis.errors import OasisError

log = logging.getLogger(__name__)

_END = object()
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


async def in_runs(
    events: AsyncIterator[T], most: int = 64, flush: Callable[[T], bool] | None = None
) -> AsyncIterator[list[T]]:
    """``events`` in runs: each run is every event made since the last run was taken.

    A task of its own reads ``events`` ahead of the caller (at most ``most`` events
    ahead), so it goes on until the producer itself waits (on the engine, a tool, the
    network) while the caller writes. Events made back to back then reach the caller as
    one run, to write at once: one write, and one wake-up of the client, instead of one
    each, which on a loaded machine is where a stream's time goes (each write can hand the
    CPU to the woken client). An event that ``flush`` picks ends its run even when the
    producer has more to do before it waits. A failure of ``events`` is raised after the
    events before it; closing the runs (or cancelling their reader) closes ``events``.
    """
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
    room = asyncio.Event()
    room.set()

    async def read() -> None:
        try:
            async for event in events:
                queue.put_nowait((True, event))
                if queue.qsize() >= most:
                    room.clear()
                    await room.wait()
                elif flush is not None and flush(event):
                    await asyncio.sleep(0)  # the caller, woken by the event, takes the run
        except Exception as exc:  # handed to the caller, which raises it
            queue.put_nowait((False, exc))
        else:
            queue.put_nowait((False, None))
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    reader = asyncio.create_task(read(), name="stream reader")
    try:
        while True:
            taken = [await queue.get()]
            while not queue.empty():
                taken.append(queue.get_nowait())
            room.set()
            run = [value for more, value in taken if more]
            if taken[-1][0]:
                yield run
                continue
            if run:
                yield run
            failure = taken[-1][1]
            if failure is not None:
                raise failure
            return
    finally:
        if not reader.done():
            reader.cancel()
        await asyncio.wait({reader})


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


class Interleaved:
    """The events of several streams as they arrive, each as ``(stream index, event)``.

    One stream is read directly; several are read by one task each, so a backend that
    runs them at once is never held back by a reader waiting on another. The first error
    from any stream is raised here. Closing (or an error) closes every stream, whether or
    not it was ever read.
    """

    def __init__(self, streams: Sequence[EventStream]) -> None:
        self._streams = list(streams)
        self._queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self._readers: list[asyncio.Task[None]] = []
        self._open = len(self._streams)
        self._closed = False

    def __aiter__(self) -> Interleaved:
        return self

    async def __anext__(self) -> tuple[int, GenerationEvent]:
        if self._closed or not self._open:
            raise StopAsyncIteration
        if len(self._streams) == 1:  # nothing to interleave: no task in between
            try:
                return 0, await self._streams[0].__anext__()
            except BaseException:
                await self.aclose()
                raise
        if not self._readers:
            self._readers = [
                asyncio.create_task(self._read(i, stream), name=f"choice {i}")
                for i, stream in enumerate(self._streams)
            ]
        try:
            while True:
                index, item = await self._queue.get()
                if item is _END:
                    self._open -= 1
                    if not self._open:
                        raise StopAsyncIteration
                elif isinstance(item, BaseException):
                    raise item
                else:
                    return index, item
        except BaseException:
            await self.aclose()
            raise

    async def _read(self, index: int, stream: EventStream) -> None:
        try:
            async for event in stream:
                self._queue.put_nowait((index, event))
        except Exception as exc:  # handed to the consumer, which raises it
            self._queue.put_nowait((index, exc))
            return
        self._queue.put_nowait((index, _END))

    async def aclose(self) -> None:
        """Stop every stream (and its engine job)."""
        if self._closed:
            return
        self._closed = True
        for reader in self._readers:
            reader.cancel()
        if self._readers:  # each closes its stream's generator as it unwinds
            await asyncio.wait(self._readers)
        for stream in self._streams:
            await stream.aclose()
