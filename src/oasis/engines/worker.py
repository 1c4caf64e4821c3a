"""One worker thread per loaded model, with results streamed back to the event loop.

A job is a blocking function ``job(emit, cancelled)``: it calls ``emit(item)`` for each
result and checks ``cancelled.is_set()`` between steps. :meth:`ModelWorker.stream` queues
the job at once (raising :class:`~oasis.errors.OverloadedError` right there when the queue
is full, so a caller can still answer 503 before a streaming response starts) and returns
an async iterator over what the job emits; closing that iterator, or dropping it, sets
``cancelled``. With ``max_wait``, a job still queued that long is dropped and its
iterator raises ``OverloadedError``, again before it has yielded anything.
:meth:`ModelWorker.stream_many` queues one request's jobs together, admitted or refused as
a whole: a request that was let in is not failed half-way through. Jobs for one model run
one at a time, in arrival order, so a runtime is never entered by two requests at once; a
runtime that batches requests itself (the llama.cpp scheduler) asks for ``workers`` threads
and runs that many jobs at once.

Background work (batch lines) runs below interactive traffic: a task that called
:func:`lower_priority` queues its jobs behind every interactive job, and such a job starts
only on a thread that no interactive job waits for, with one thread always left free for
the next interactive request when there are several (a llama.cpp model with ``parallel``
sequences runs up to ``parallel - 1`` batch lines beside each other, and a live request
joins them at once). With one thread, a background job runs only while no interactive job
waits or runs, and an interactive request waits for at most that one job.

A worker made with ``yields=True`` (its runtime checks :func:`must_yield` between steps)
also lets *rerunnable* background jobs (``lower_priority(rerunnable=True)``: requests with
no side effects, which may be stopped part-way and run again from the start) take that last
thread once no interactive job has run for ``LIVE_QUIET`` seconds. An interactive arrival
that finds every thread taken asks the newest of them to give its thread up: the job raises
:class:`~oasis.errors.PreemptedError` at its next step, and its caller (the batch runner)
runs it again later. So a batch uses the whole model while nobody else does, the first live
request of a burst waits about one step for a thread, and the ones after it find the thread
kept free for them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from oasis.errors import ModelUnavailableError, OasisError, OverloadedError

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[Callable[[T], None], threading.Event], None]

_DONE = object()
_STARTED = object()  # the job left the queue: the wait limit no longer applies
_RELEASE = object()  # frees the job's queue slot; always posted just before _DONE

_BACKGROUND: ContextVar[bool] = ContextVar("oasis_background_priority", default=False)
_RERUNNABLE: ContextVar[bool] = ContextVar("oasis_background_rerunnable", default=False)
_JOB = threading.local()  # what the job running on this worker thread is

# Seconds without interactive jobs after which rerunnable background jobs may take a
# worker's last thread (see the module's docstring).
LIVE_QUIET = 2.0


def lower_priority(*, rerunnable: bool = False) -> None:
    """Run the model jobs of the current task (and of tasks it starts) as background work.

    ``rerunnable``: the task's requests have no side effects, so a job of theirs may be
    stopped part-way (:class:`~oasis.errors.PreemptedError`) and the request run again.
    """
    _BACKGROUND.set(True)
    _RERUNNABLE.set(rerunnable)


def in_background() -> bool:
    """Whether the job running on the calling worker thread is background work (so a
    runtime that batches sequences can hold it back while interactive ones run)."""
    return bool(getattr(_JOB, "background", False))


def must_yield() -> bool:
    """Whether the job running on the calling worker thread has been asked to give its
    thread to an interactive job (it then raises :class:`~oasis.errors.PreemptedError`
    before its next step). Only rerunnable background jobs are ever asked."""
    flag: threading.Event | None = getattr(_JOB, "yield_flag", None)
    return flag is not None and flag.is_set()


class JobStream(AsyncIterator[T]):
    """What one queued job emits, in order. ``aclose()`` (or garbage collection) cancels it.

    A class rather than an async generator: an async generator that was never iterated
    runs no ``finally`` on ``aclose()``, and a job queued eagerly must still be cancelled
    when its consumer gives up before reading anything.
    """

    def __init__(
        self,
        queue: asyncio.Queue[Any],
        cancelled: threading.Event,
        deadline: float | None = None,
        late: Callable[[], OverloadedError] | None = None,
    ) -> None:
        self._queue = queue
        self._cancelled = cancelled
        self._done = False
        self._deadline = deadline  # loop time by which the job must have started
        self._late = late

    def __aiter__(self) -> JobStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        item = await self._get()
        if item is _DONE:
            self._finish()
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._finish()
            raise item
        return item  # type: ignore[no-any-return]

    async def _get(self) -> Any:
        while True:
            if self._deadline is None:
                item = await self._queue.get()
            else:
                try:
                    async with asyncio.timeout_at(self._deadline):
                        item = await self._queue.get()
                except TimeoutError:
                    self._finish()  # the worker skips the job when its turn comes
                    assert self._late is not None
                    raise self._late() from None
            if item is not _STARTED:
                return item
            self._deadline = None

    def _finish(self) -> None:
        self._done = True
        self._cancelled.set()

    async def aclose(self) -> None:
        """Stop the job at its next check (or before it starts, if it is still queued)."""
        self._finish()

    def __del__(self) -> None:
        # threading.Event.set is safe from any thread, including the collector's.
        self._cancelled.set()


class ModelWorker(Generic[T]):
    """The thread (or ``workers`` threads) that run one model's jobs, and the queue in
    front of them. A job waits in the queue until a thread is free."""

    def __init__(
        self,
        name: str,
        max_queue: int,
        max_wait: float | None = None,
        *,
        workers: int = 1,
        yields: bool = False,
    ) -> None:
        self.name = name
        self._max_queue = max_queue
        self._max_wait = max_wait  # seconds a job may wait for its turn; None: no limit
        self._pending = 0
        self._running = 0  # jobs in the threads now (written there, read on the loop)
        self._running_lock = threading.Lock()  # several threads count when workers > 1
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._workers = workers
        # Threads background jobs may fill: all but one, kept for an interactive arrival;
        # all of them for rerunnable jobs when the runtime yields (one gives its thread up).
        self._background_threads = max(1, workers - 1)
        self._yields = yields
        self._background_running = 0  # background jobs are not counted in _pending
        # Background jobs not yet handed to the executor: how to start each, how to fail
        # it, and the flag that asks it to yield (rerunnable jobs on a yielding worker).
        self._deferred: deque[
            tuple[Callable[[], None], Callable[[], None], threading.Event | None]
        ] = deque()
        # The yield flags of the rerunnable background jobs running now, oldest first.
        self._yieldable: list[threading.Event] = []
        self._live_seen = -LIVE_QUIET  # when an interactive job last arrived or ended

    def _release(self, background: bool = False, flag: threading.Event | None = None) -> None:
        if background:
            self._background_running -= 1
            if flag is not None:
                self._yieldable.remove(flag)
        else:
            self._pending -= 1
            self._live_seen = time.monotonic()
        self._admit()

    def _admit(self) -> None:
        """Hand deferred background jobs to the executor, in order, while no interactive
        job waits for a thread they would take."""
        quiet = self._pending == 0 and time.monotonic() - self._live_seen >= LIVE_QUIET
        while self._deferred:
            submit, _, flag = self._deferred[0]
            room = self._workers if flag is not None and quiet else self._background_threads
            if self._pending + self._background_running >= room:
                return
            self._deferred.popleft()
            self._background_running += 1
            if flag is not None:
                self._yieldable.append(flag)
            submit()

    def _preempt(self) -> None:
        """Ask the newest rerunnable background jobs to give their threads up, as many as
        the interactive jobs that would otherwise wait for one (not counting those asked
        already)."""
        short = self._pending + self._background_running - self._workers
        short -= sum(flag.is_set() for flag in self._yieldable)
        for flag in reversed(self._yieldable):
            if short <= 0:
                return
            if not flag.is_set():
                flag.set()
                short -= 1

    def _run(
        self,
        job: Job[T],
        emit: Callable[[object], None],
        cancelled: threading.Event,
        background: bool,
        flag: threading.Event | None = None,
    ) -> None:
        _JOB.background = background
        _JOB.yield_flag = flag
        try:
            if not cancelled.is_set():
                emit(_STARTED)
                with self._running_lock:
                    self._running += 1
                try:
                    job(emit, cancelled)
                finally:
                    with self._running_lock:
                        self._running -= 1
        except OasisError as exc:
            emit(exc)
        except Exception as exc:  # a runtime failure must reach the waiting request
            log.exception("%s: job failed", self.name)
            emit(OasisError(f"The model runtime failed: {type(exc).__name__}: {exc}"))
        finally:
            # The slot is free before the consumer sees the end (both go through the loop
            # in this order), so a client that sends its next request at once gets it.
            emit(_RELEASE)
            emit(_DONE)

    @property
    def load(self) -> tuple[int, int]:
        """(waiting, running): jobs queued behind the running one (batch jobs included),
        and jobs running."""
        running = self._running
        queued = self._pending + self._background_running + len(self._deferred)
        return max(0, queued - running), running

    def stream(self, job: Job[T]) -> AsyncIterator[T]:
        """Queue ``job`` now and return an iterator over what it emits, in order.

        Raises :class:`~oasis.errors.OverloadedError` synchronously when ``max_queue``
        jobs are already waiting or running, and from the iterator when the job waited
        ``max_wait`` seconds without starting. Must be called on the event loop.
        """
        return self.stream_many([job])[0]

    def stream_many(self, jobs: Sequence[Job[T]]) -> list[JobStream[T]]:
        """Queue ``jobs`` now, in order, as one request (its choices): one iterator each.

        The group is admitted or refused as a whole: ``max_queue`` is checked once, so a
        request with more choices than ``max_queue`` still runs on an idle model (while
        its jobs are pending, later requests are refused), and only the first job carries
        the ``max_wait`` deadline: the rest sit right behind it, so once it has started
        none of them is refused or timed out. Raises
        :class:`~oasis.errors.OverloadedError` synchronously (and queues nothing) when
        ``max_queue`` jobs are already waiting or running.
        """
        # Background jobs are bounded by their runner (the batch concurrency), not here.
        if self._pending >= self._max_queue and not _BACKGROUND.get():
            raise OverloadedError(
                f"{self.name} has {self._pending} requests waiting; try again shortly."
            )
        return [self._queue(job, first=i == 0) for i, job in enumerate(jobs)]

    def _queue(self, job: Job[T], *, first: bool) -> JobStream[T]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        background = _BACKGROUND.get()
        flag = threading.Event() if background and self._yields and _RERUNNABLE.get() else None

        # Items wait here until the loop drains them: a job emitting faster than the loop
        # runs wakes it once per batch rather than once per item, which matters when the
        # CPUs are contended and every wake-up competes with the runtime's own threads.
        pending: list[object] = []
        lock = threading.Lock()

        def drain() -> None:
            with lock:
                items = pending.copy()
                pending.clear()
            for item in items:
                if item is _RELEASE:
                    self._release(background, flag)
                else:
                    queue.put_nowait(item)

        def emit(item: object) -> None:
            with lock:
                pending.append(item)
                wake = len(pending) == 1
            if wake:
                try:
                    loop.call_soon_threadsafe(drain)
                except RuntimeError:  # the loop is closed (shutdown): nobody is listening
                    cancelled.set()

        def finished(done: asyncio.Future[None]) -> None:
            if done.cancelled():  # dropped from the queue by close(): end the stream too
                self._release(background, flag)
                fail()

        def fail() -> None:
            queue.put_nowait(ModelUnavailableError(f"{self.name} is shutting down."))
            queue.put_nowait(_DONE)

        def submit() -> None:
            future = loop.run_in_executor(
                self._executor, self._run, job, emit, cancelled, background, flag
            )
            future.add_done_callback(finished)

        if background:
            # No wait limit: a batch line waits as long as interactive traffic needs.
            self._deferred.append((submit, fail, flag))
            self._admit()
            return JobStream(queue, cancelled)
        self._pending += 1
        self._live_seen = time.monotonic()
        if self._yields:
            self._preempt()
        submit()
        if self._max_wait is None or not first:
            return JobStream(queue, cancelled)
        max_wait = self._max_wait
        return JobStream(
            queue,
            cancelled,
            loop.time() + max_wait,
            lambda: OverloadedError(
                f"{self.name} had no free slot for {max_wait:g} s; try again shortly."
            ),
        )

    async def close(self) -> None:
        """Cancel queued jobs and wait, off the event loop, for the running ones to end."""
        while self._deferred:
            _, fail, _ = self._deferred.popleft()
            fail()
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
