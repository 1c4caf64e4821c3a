"""Several generations of one request, read together as they produce."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from oasis.core.backend import EventStream
from oasis.core.events import GenerationEvent

_END = object()


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
