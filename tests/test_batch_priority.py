"""Unit: how batch lines (background work) share a model with live requests.

The worker lets background jobs fill all its threads but one, so a live request starts at
once beside them; the llama.cpp step scheduler then leaves background sequences out of
every step while a live one is active. The end-to-end check is in ``test_batches.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from oasis.engines.scheduler import StepScheduler
from oasis.engines.worker import ModelWorker, in_background, lower_priority


def test_background_jobs_leave_one_thread_to_live_requests() -> None:
    async def run() -> None:
        worker: ModelWorker[str] = ModelWorker("model", max_queue=8, workers=4)
        release = threading.Event()
        started: list[str] = []
        lock = threading.Lock()

        def job(name: str) -> Callable[[Callable[[str], None], threading.Event], None]:
            def body(emit: Callable[[str], None], _: threading.Event) -> None:
                with lock:
                    started.append(f"{name}:{'bg' if in_background() else 'live'}")
                release.wait(10)
                emit(name)

            return body

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
        release.set()
        assert [item async for item in live] == ["live"]
        assert await lines == [f"b{i}" for i in range(6)]
        await worker.close()

    asyncio.run(run())


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
