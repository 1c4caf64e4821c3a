"""Unit: how batch lines (background work) share a model with live requests.

The worker lets background jobs fill all its threads but one, so a live request starts at
once beside them (rerunnable jobs on a worker whose runtime yields take every thread, and
the newest gives its thread up to a live arrival); the llama.cpp step scheduler then leaves
background sequences out of every step while a live one is active. The end-to-end checks
are in ``test_batches.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from oasis.engines import worker as worker_module
from oasis.engines.scheduler import StepScheduler
from oasis.engines.worker import Job, ModelWorker, in_background, lower_priority, must_yield
from oasis.errors import PreemptedError


class _Jobs:
    """Jobs that note their start (``name:bg`` or ``name:live``), then run steps until
    released, giving their thread up when the worker asks (as the llama.cpp engine does)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, name: str) -> Job[str]:
        def body(emit: Callable[[str], None], _: threading.Event) -> None:
            with self._lock:
                self.started.append(f"{name}:{'bg' if in_background() else 'live'}")
            while not self.release.wait(0.01):  # a runtime's steps
                if must_yield():
                    raise PreemptedError()
            emit(name)

        return body


def test_background_jobs_leave_one_thread_to_live_requests() -> None:
    async def run() -> None:
        worker: ModelWorker[str] = ModelWorker("model", max_queue=8, workers=4)
        job = _Jobs()
        started = job.started

        async def batch_lines() -> list[str]:
            lower_priority()
            streams = [worker.stream(job(f"b{i}")) for i in range(6)]
            return [item for stream in streams async for item in stream]

        lines = asyncio.create_task(batch_lines())
        await _until(lambda: len(started) == 3)
        await asyncio.sleep(0.2)
        assert sorted(started) == ["b0:bg", "b1:bg", "b2:bg"]  # three of four threads
        live = worker.stream(job("live"))
        await _until(lambda: len(started) == 4)
        assert started[-1] == "live:live"  # started at once, beside the batch lines
        job.release.set()
        assert [item async for item in live] == ["live"]
        assert await lines == [f"b{i}" for i in range(6)]
        await worker.close()

    asyncio.run(run())


def test_rerunnable_jobs_take_every_thread_and_the_newest_yields_to_a_live_one() -> None:
    async def run() -> None:
        worker: ModelWorker[str] = ModelWorker("model", max_queue=8, workers=3, yields=True)
        job = _Jobs()
        started = job.started

        async def line(name: str) -> list[str]:
            stream = worker.stream(job(name))
            try:
                return [item async for item in stream]
            except PreemptedError:
                return ["preempted"]

        async def batch_lines() -> list[list[str]]:
            lower_priority(rerunnable=True)
            return await asyncio.gather(*(line(f"b{i}") for i in range(4)))

        lines = asyncio.create_task(batch_lines())
        await _until(lambda: len(started) == 3)
        await asyncio.sleep(0.2)
        assert sorted(started) == ["b0:bg", "b1:bg", "b2:bg"]  # every thread, the last included
        live = worker.stream(job("live"))
        await _until(lambda: "live:live" in started)
        await asyncio.sleep(0.2)
        assert "b3:bg" not in started  # the waiting line did not take the freed thread
        job.release.set()
        assert [item async for item in live] == ["live"]
        # The newest line gave way; the others and the one still queued ran to the end.
        assert await lines == [["b0"], ["b1"], ["preempted"], ["b3"]]
        await worker.close()

    asyncio.run(run())


def test_jobs_that_may_not_run_twice_still_leave_a_thread_on_a_yielding_worker() -> None:
    async def run() -> None:
        worker: ModelWorker[str] = ModelWorker("model", max_queue=8, workers=3, yields=True)
        job = _Jobs()  # a line asked to yield would end in PreemptedError, not its name
        started = job.started

        async def batch_lines() -> list[str]:
            lower_priority()  # not rerunnable (a Responses line, say)
            streams = [worker.stream(job(f"b{i}")) for i in range(3)]
            return [item for stream in streams async for item in stream]

        lines = asyncio.create_task(batch_lines())
        await _until(lambda: len(started) == 2)
        await asyncio.sleep(0.2)
        assert sorted(started) == ["b0:bg", "b1:bg"]
        live = worker.stream(job("live"))
        await _until(lambda: "live:live" in started)
        job.release.set()
        assert [item async for item in live] == ["live"]
        assert await lines == ["b0", "b1", "b2"]
        await worker.close()

    asyncio.run(run())


def test_a_held_background_sequence_that_must_yield_leaves_the_steps() -> None:
    """A batch line sitting out a live sequence's steps still hears that it must yield."""
    steps: list[list[int]] = []
    scheduler = StepScheduler("test", lambda e: steps.append(sorted({s for s, *_ in e})), 64)
    flag = threading.Event()
    outcome: list[str] = []
    live_asked = threading.Event()

    def batch_line() -> None:
        worker_module._JOB.yield_flag = flag  # what the worker sets for a rerunnable job
        scheduler.join(background=True)
        try:
            live_asked.wait(10)
            scheduler.decode(0, [1], 0, [True])  # held: a live sequence is active
            outcome.append("decoded")
        except PreemptedError:
            outcome.append("yielded")
        finally:
            scheduler.leave()

    def live() -> None:
        scheduler.join(background=False)
        try:
            live_asked.set()
            time.sleep(0.1)
            flag.set()
            time.sleep(0.1)
            scheduler.decode(1, [1], 0, [True])
        finally:
            scheduler.leave()

    threads = [threading.Thread(target=batch_line), threading.Thread(target=live)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    scheduler.close()
    assert outcome == ["yielded"] and steps == [[1]]


def test_background_sequences_sit_out_steps_while_a_live_one_runs() -> None:
    steps: list[list[int]] = []

    def decode(entries: list[tuple[int, int, int, bool]]) -> None:
        steps.append(sorted({slot for slot, *_ in entries}))

    scheduler = StepScheduler("test", decode, n_batch=64)
    go = threading.Event()

    def sequence(slot: int, background: bool, tokens: int) -> None:
        scheduler.join(background)
        try:
            if not background:
                go.wait(10)  # until the batch line has joined and asked
            for position in range(tokens):
                scheduler.decode(slot, [1], position, [True])
        finally:
            scheduler.leave()

    live = threading.Thread(target=sequence, args=(1, False, 3))
    batch = threading.Thread(target=sequence, args=(0, True, 4))
    live.start()
    time.sleep(0.1)
    batch.start()
    time.sleep(0.2)
    go.set()
    live.join(10)
    batch.join(10)
    scheduler.close()
    # The live sequence decoded its tokens alone; the batch line went on once it left
    # (without the hold every step would have held both).
    assert steps == [[1], [1], [1], [0], [0], [0], [0]]


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
