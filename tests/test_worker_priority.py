"""engines/worker.py ModelWorker: jobs of a task that called ``lower_priority`` (batch
lines) start only while no interactive job waits or runs, one at a time, and are never
refused by the interactive queue limit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from oasis.engines.worker import ModelWorker, lower_priority

Emit = Callable[[str], None]


def _job(name: str, order: list[str], gate: threading.Event | None = None) -> Callable[..., None]:
    def job(emit: Emit, cancelled: threading.Event) -> None:
        if gate is not None:
            gate.wait(10)
        order.append(name)
        emit(name)

    return job


async def _drain(stream: object) -> list[str]:
    return [item async for item in stream]  # type: ignore[attr-defined]


def test_interactive_jobs_overtake_queued_background_jobs() -> None:
    async def main() -> list[str]:
        worker: ModelWorker[str] = ModelWorker("t", max_queue=1)
        order: list[str] = []
        gate = threading.Event()

        async def background() -> list[list[str]]:
            lower_priority()
            first = worker.stream(_job("batch-1", order, gate))
            second = worker.stream(_job("batch-2", order))
            return [await _drain(first), await _drain(second)]

        batch = asyncio.create_task(background())
        await asyncio.sleep(0.05)  # batch-1 runs (held by the gate), batch-2 waits
        # The queue limit (1) counts interactive jobs only: this one is admitted.
        live = worker.stream(_job("live", order))
        gate.set()
        assert await _drain(live) == ["live"]
        assert await batch == [["batch-1"], ["batch-2"]]
        await worker.close()
        return order

    assert asyncio.run(main()) == ["batch-1", "live", "batch-2"]


def test_background_jobs_wait_while_interactive_ones_run() -> None:
    async def main() -> list[str]:
        worker: ModelWorker[str] = ModelWorker("t", max_queue=4)
        order: list[str] = []
        gate = threading.Event()
        live = worker.stream(_job("live", order, gate))

        async def background() -> list[str]:
            lower_priority()
            return await _drain(worker.stream(_job("batch", order)))

        batch = asyncio.create_task(background())
        await asyncio.sleep(0.05)
        assert order == []  # the batch job did not start beside or before the live one
        gate.set()
        assert await _drain(live) == ["live"]
        assert await batch == ["batch"]
        await worker.close()
        return order

    assert asyncio.run(main()) == ["live", "batch"]
