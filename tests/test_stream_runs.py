"""``in_runs``: what a stream's producer makes back to back reaches its writer as one run.

The Responses SSE writer sends each run in one write. These drive the helper with small
async generators on a real event loop: a producer that waits between events (a token
engine, a tool call) and one that makes several at once (a hosted tool's item opening).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from oasis.services.streams import in_runs


async def _collect(runs: AsyncIterator[list[str]]) -> list[list[str]]:
    return [run async for run in runs]


def test_events_made_back_to_back_come_as_one_run() -> None:
    async def produce() -> AsyncIterator[str]:
        yield "added"
        yield "in_progress"
        yield "arguments"
        await asyncio.sleep(0.01)  # the call: the producer waits
        yield "completed"
        yield "done"

    assert asyncio.run(_collect(in_runs(produce()))) == [
        ["added", "in_progress", "arguments"],
        ["completed", "done"],
    ]


def test_a_flushed_event_ends_its_run() -> None:
    async def produce() -> AsyncIterator[str]:
        yield "a"
        yield "done"
        yield "b"  # made before the producer waits, but after the flushed event

    runs = asyncio.run(_collect(in_runs(produce(), flush=lambda e: e == "done")))
    assert runs == [["a", "done"], ["b"]]


def test_the_reader_keeps_at_most_so_many_events_ahead() -> None:
    made: list[int] = []

    async def produce() -> AsyncIterator[int]:
        for i in range(10):
            made.append(i)
            yield i

    async def main() -> list[int]:
        runs = in_runs(produce(), most=3)
        first = await anext(runs)
        ahead = len(made)
        await runs.aclose()
        return [len(first), ahead]

    size, ahead = asyncio.run(main())
    assert size == 3 and ahead == 3


def test_a_failure_comes_after_the_events_before_it() -> None:
    async def produce() -> AsyncIterator[str]:
        yield "a"
        yield "b"
        raise ValueError("broken")

    async def main() -> list[str]:
        seen: list[str] = []
        with pytest.raises(ValueError, match="broken"):
            async for run in in_runs(produce()):
                seen += run
        return seen

    assert asyncio.run(main()) == ["a", "b"]


def test_closing_the_runs_stops_the_producer_where_it_waits() -> None:
    async def main() -> tuple[bool, bool]:
        stopped = asyncio.Event()
        waiting = asyncio.Event()

        async def produce() -> AsyncIterator[str]:
            try:
                yield "first"
                waiting.set()
                await asyncio.sleep(60)  # a generation that would go on
                yield "never"
            finally:
                stopped.set()

        runs = in_runs(produce())
        assert await anext(runs) == ["first"]
        await waiting.wait()
        await runs.aclose()
        return stopped.is_set(), any(
            t.get_name() == "stream reader" for t in asyncio.all_tasks() if not t.done()
        )

    stopped, reader_left = asyncio.run(main())
    assert stopped and not reader_left


def test_a_cancelled_writer_cancels_the_producer() -> None:
    async def main() -> bool:
        stopped = asyncio.Event()

        async def produce() -> AsyncIterator[str]:
            try:
                yield "first"
                await asyncio.sleep(60)
                yield "never"
            finally:
                stopped.set()

        async def write() -> None:
            async for _ in in_runs(produce()):
                pass

        task = asyncio.create_task(write())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return stopped.is_set()

    assert asyncio.run(main())
