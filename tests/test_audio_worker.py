"""engines/worker.py ModelWorker: overload is raised before anything streams, and a job
whose consumer gives up (closed or dropped before reading) is cancelled."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable

import pytest

from oasis.engines.worker import ModelWorker
from oasis.errors import OasisError, OverloadedError


def _blocking_job(
    started: threading.Event, release: threading.Event, seen_cancel: list[bool]
) -> Callable[[Callable[[int], None], threading.Event], None]:
    def job(emit: Callable[[int], None], cancelled: threading.Event) -> None:
        started.set()
        release.wait(10)
        seen_cancel.append(cancelled.is_set())
        if not cancelled.is_set():
            emit(1)

    return job


def test_stream_emits_in_order_and_ends() -> None:
    async def main() -> list[int]:
        worker: ModelWorker[int] = ModelWorker("t", max_queue=4)

        def job(emit: Callable[[int], None], cancelled: threading.Event) -> None:
            for i in range(5):
                emit(i)

        out = [item async for item in worker.stream(job)]
        await worker.close()
        return out

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_full_queue_raises_synchronously_on_the_call() -> None:
    async def main() -> None:
        worker: ModelWorker[int] = ModelWorker("t", max_queue=1)
        started, release = threading.Event(), threading.Event()
        seen: list[bool] = []
        first = worker.stream(_blocking_job(started, release, seen))
        # Not iterated yet: the call itself must refuse, before any response could start.
        with pytest.raises(OverloadedError):
            worker.stream(_blocking_job(threading.Event(), threading.Event(), []))
        release.set()
        assert [item async for item in first] == [1]
        # The slot is free again once the job has finished.
        again = worker.stream(_blocking_job(threading.Event(), release, []))
        assert [item async for item in again] == [1]
        await worker.close()

    asyncio.run(main())


def test_closing_an_unread_stream_cancels_its_job() -> None:
    async def main() -> list[bool]:
        worker: ModelWorker[int] = ModelWorker("t", max_queue=4)
        started, release = threading.Event(), threading.Event()
        seen: list[bool] = []
        stream = worker.stream(_blocking_job(started, release, seen))
        await asyncio.to_thread(started.wait, 10)
        await stream.aclose()  # type: ignore[attr-defined]
        release.set()
        await worker.close()
        return seen

    assert asyncio.run(main()) == [True]


def test_dropping_an_unread_stream_cancels_its_job() -> None:
    async def main() -> list[bool]:
        worker: ModelWorker[int] = ModelWorker("t", max_queue=4)
        started, release = threading.Event(), threading.Event()
        seen: list[bool] = []
        worker.stream(_blocking_job(started, release, seen))  # result dropped at once
        gc.collect()
        await asyncio.to_thread(started.wait, 10)
        release.set()
        await worker.close()
        return seen

    assert asyncio.run(main()) == [True]


def test_job_errors_reach_the_consumer() -> None:
    async def main() -> None:
        worker: ModelWorker[int] = ModelWorker("t", max_queue=4)

        def job(emit: Callable[[int], None], cancelled: threading.Event) -> None:
            emit(7)
            raise RuntimeError("boom")

        stream = worker.stream(job)
        assert await anext(stream) == 7
        with pytest.raises(OasisError, match="boom"):
            await anext(stream)
        await worker.close()

    asyncio.run(main())


def test_close_ends_queued_streams_without_blocking_the_loop() -> None:
    async def main() -> None:
        worker: ModelWorker[int] = ModelWorker("t", max_queue=4)
        started, release = threading.Event(), threading.Event()
        seen: list[bool] = []
        running = worker.stream(_blocking_job(started, release, seen))
        queued = worker.stream(_blocking_job(threading.Event(), threading.Event(), []))
        await asyncio.to_thread(started.wait, 10)
        closing = asyncio.ensure_future(worker.close())
        await asyncio.sleep(0.05)
        assert not closing.done()  # waits for the running job, off the loop
        release.set()
        await closing
        assert [item async for item in running] == [1]
        with pytest.raises(OasisError, match="shutting down"):
            await anext(queued)

    asyncio.run(main())


def test_a_group_is_admitted_as_one_request() -> None:
    """One request's choices are queued together: more of them than ``max_queue`` still
    run on an idle model, and while they are pending the next request is refused."""

    async def main() -> None:
        worker: ModelWorker[int] = ModelWorker("t", max_queue=2)
        started, release = threading.Event(), threading.Event()
        seen: list[bool] = []
        group = worker.stream_many([_blocking_job(started, release, seen) for _ in range(3)])
        with pytest.raises(OverloadedError):
            worker.stream(_blocking_job(threading.Event(), threading.Event(), []))
        release.set()
        assert [[item async for item in stream] for stream in group] == [[1], [1], [1]]
        await worker.close()
        assert seen == [False, False, False]

    asyncio.run(main())


def test_a_burst_wakes_the_loop_once_and_keeps_order() -> None:
    """Items emitted while the loop is busy reach it in one wake-up, not one per item:
    under CPU contention every wake-up competes with the runtime's threads."""

    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        wakeups = 0
        original = loop.call_soon_threadsafe

        def counting(callback: Callable[..., object], *args: object) -> asyncio.Handle:
            nonlocal wakeups
            wakeups += 1
            return original(callback, *args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        worker: ModelWorker[int] = ModelWorker("t", max_queue=4)
        emitted = threading.Event()

        def job(emit: Callable[[int], None], cancelled: threading.Event) -> None:
            for i in range(200):
                emit(i)
            emitted.set()

        stream = worker.stream(job)
        emitted.wait(10)  # blocks the loop on purpose while the job emits everything
        before_end = wakeups
        out = [item async for item in stream]
        await worker.close()
        return out, before_end

    out, wakeups = asyncio.run(main())
    assert out == list(range(200))
    assert wakeups <= 2  # the burst, and at most the end posted after it was drained


def test_the_slot_is_free_when_the_consumer_sees_the_end() -> None:
    async def main() -> None:
        worker: ModelWorker[int] = ModelWorker("t", max_queue=1)

        def job(emit: Callable[[int], None], cancelled: threading.Event) -> None:
            for i in range(50):
                emit(i)

        stream = worker.stream(job)
        for _ in range(20):
            assert [item async for item in stream] == list(range(50))
            # Straight after the end, a one-slot queue takes the next job.
            stream = worker.stream(job)
        assert [item async for item in stream] == list(range(50))
        await worker.close()

    asyncio.run(main())


def test_only_a_groups_first_job_can_time_out_in_the_queue() -> None:
    """``max_wait`` bounds the wait for a request's first job; the rest of its group sit
    behind that one and are never timed out, however long it runs."""

    async def main() -> None:
        worker: ModelWorker[int] = ModelWorker("t", max_queue=4, max_wait=0.05)
        started, release = threading.Event(), threading.Event()
        seen: list[bool] = []
        first, second = worker.stream_many([_blocking_job(started, release, seen)] * 2)
        reader = asyncio.ensure_future(anext(first))
        waiter = asyncio.ensure_future(anext(second))  # waiting on the queue all along
        await asyncio.to_thread(started.wait, 10)
        await asyncio.sleep(0.3)  # well past max_wait: the second job is still queued
        late = worker.stream(_blocking_job(threading.Event(), release, []))
        with pytest.raises(OverloadedError):  # another request's job does time out
            await anext(late)
        release.set()
        assert await reader == 1
        assert await waiter == 1
        await worker.close()

    asyncio.run(main())
