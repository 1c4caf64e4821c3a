"""One worker thread per loaded model, with results streamed back to the event loop.

A job is a blocking function ``job(emit, cancelled)``: it calls ``emit(item)`` for each
result and checks ``cancelled.is_set()`` between steps. :meth:`ModelWorker.stream` runs it
on the model's thread and yields the items as an async iterator; closing that iterator
sets ``cancelled``. Jobs for one model run one at a time, in arrival order, so a runtime
is never entered by two requests at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from oasis.errors import OasisError, OverloadedError

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[Callable[[T], None], threading.Event], None]

_DONE = object()


class ModelWorker(Generic[T]):
    """The single thread that runs one model's jobs, and the queue in front of it."""

    def __init__(self, name: str, max_queue: int) -> None:
        self.name = name
        self._max_queue = max_queue
        self._pending = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)

    def _run(self, job: Job[T], emit: Callable[[object], None], cancelled: threading.Event) -> None:
        try:
            if not cancelled.is_set():
                job(emit, cancelled)
        except OasisError as exc:
            emit(exc)
        except Exception as exc:  # a runtime failure must reach the waiting request
            log.exception("%s: job failed", self.name)
            emit(OasisError(f"The model runtime failed: {type(exc).__name__}: {exc}"))
        finally:
            emit(_DONE)

    def _finished(self, _: asyncio.Future[None]) -> None:
        self._pending -= 1

    async def stream(self, job: Job[T]) -> AsyncIterator[T]:
        """Run ``job`` on the worker thread; yield what it emits, in order."""
        if self._pending >= self._max_queue:
            raise OverloadedError(
                f"{self.name} has {self._pending} requests waiting; try again shortly."
            )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        self._pending += 1
        future = loop.run_in_executor(self._executor, self._run, job, emit, cancelled)
        future.add_done_callback(self._finished)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
