"""The micro-batcher in process, driven by a scripted engine that records its batches.

The end-to-end tests (test_embeddings.py) show batched vectors equal single ones on the
real model; these show how inputs are grouped, which the HTTP side cannot see.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from numpy.typing import NDArray

from oasis.engines.embeddings import MAX_PASS_ROWS, plan_passes
from oasis.errors import OasisError, OverloadedError
from oasis.models.specs import LocalSource, ModelSpec
from oasis.services.embeddings import BatchPolicy, MicroBatcher, shorten

SPEC = ModelSpec(id="scripted", kind="embeddings", engine="scripted", source=LocalSource("/x"))


class ScriptedEngine:
    """Vector of an input = [first token, length, 0, …]; remembers every batch it ran."""

    spec = SPEC
    dimensions = 4
    max_input_tokens = 64
    vocab_size = 1000

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[list[int]]] = []
        self.delay = delay
        self.fail_on = fail_on

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [[len(word) for word in text.split()] for text in texts]

    def with_special_tokens(self, tokens: list[int]) -> list[int]:
        return tokens

    async def embed(self, batch: list[list[int]]) -> NDArray[np.float32]:
        self.batches.append(batch)
        await asyncio.sleep(self.delay)
        if self.fail_on is not None and any(ids[0] == self.fail_on for ids in batch):
            raise OasisError("scripted failure")
        out = np.zeros((len(batch), self.dimensions), dtype=np.float32)
        for row, ids in enumerate(batch):
            out[row, 0], out[row, 1] = ids[0], len(ids)
        return out

    async def close(self) -> None:
        pass


def policy(batch_size: int = 8, wait_ms: float = 0.0, max_pending: int = 1000) -> BatchPolicy:
    return BatchPolicy(batch_size=batch_size, max_wait_s=wait_ms / 1000, max_pending=max_pending)


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_big_request_is_split_longest_first_and_order_is_kept() -> None:
    engine = ScriptedEngine()
    batcher = MicroBatcher(engine, policy(batch_size=4))
    inputs = [[i] * (1 + i % 5) for i in range(10)]

    async def go() -> NDArray[np.float32]:
        try:
            return await batcher.embed(inputs)
        finally:
            await batcher.close()

    vectors = run(go())
    assert [len(b) for b in engine.batches] == [4, 4, 2]
    lengths = [len(ids) for batch in engine.batches for ids in batch]
    assert lengths == sorted(lengths, reverse=True)
    assert isinstance(vectors, np.ndarray)
    assert vectors[:, 0].tolist() == list(range(10))  # row i is input i
    assert vectors[:, 1].tolist() == [1 + i % 5 for i in range(10)]


async def staggered(batcher: MicroBatcher, count: int, gap: float) -> list[NDArray[np.float32]]:
    """``count`` one-input requests arriving ``gap`` seconds apart, as HTTP requests do."""

    async def one(i: int) -> NDArray[np.float32]:
        await asyncio.sleep(i * gap)
        return await batcher.embed([[i]])

    try:
        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        await batcher.close()


def test_concurrent_single_inputs_wait_for_company() -> None:
    engine = ScriptedEngine(delay=0.01)
    batcher = MicroBatcher(engine, policy(batch_size=32, wait_ms=300))
    results = run(staggered(batcher, 20, 0.002))
    assert isinstance(results, list)
    assert [int(r[0, 0]) for r in results] == list(range(20))
    assert len(engine.batches) == 1  # all arrived within the wait: one forward pass


def test_a_full_batch_does_not_wait() -> None:
    engine = ScriptedEngine()
    batcher = MicroBatcher(engine, policy(batch_size=4, wait_ms=60_000))

    async def go() -> None:
        try:
            await asyncio.wait_for(batcher.embed([[1]] * 8), timeout=10)
        finally:
            await batcher.close()

    run(go())
    assert [len(b) for b in engine.batches] == [4, 4]


def test_without_a_wait_batches_still_form_under_load() -> None:
    engine = ScriptedEngine(delay=0.1)
    batcher = MicroBatcher(engine, policy(batch_size=32, wait_ms=0))
    run(staggered(batcher, 20, 0.001))
    # The first input goes alone; the rest queue while it runs and go together.
    assert len(engine.batches[0]) == 1
    assert len(engine.batches) <= 3


def test_a_failed_batch_fails_its_requests_only() -> None:
    engine = ScriptedEngine(fail_on=7)
    batcher = MicroBatcher(engine, policy(batch_size=1))

    async def go() -> tuple[object, ...]:
        try:
            return tuple(
                await asyncio.gather(
                    batcher.embed([[7]]), batcher.embed([[8]]), return_exceptions=True
                )
            )
        finally:
            await batcher.close()

    failed, ok = run(go())  # type: ignore[misc]
    assert isinstance(failed, OasisError)
    assert isinstance(ok, np.ndarray) and ok[0, 0] == 8


def test_cancelled_requests_are_skipped() -> None:
    engine = ScriptedEngine(delay=0.02)
    batcher = MicroBatcher(engine, policy(batch_size=2))

    async def go() -> None:
        try:
            first = asyncio.ensure_future(batcher.embed([[1]]))
            await asyncio.sleep(0.005)  # [1] is now running
            doomed = asyncio.ensure_future(batcher.embed([[2], [2]]))
            kept = asyncio.ensure_future(batcher.embed([[3]]))
            await asyncio.sleep(0)
            doomed.cancel()
            await first
            assert (await kept)[0, 0] == 3
        finally:
            await batcher.close()

    run(go())
    assert all(ids[0] != 2 for batch in engine.batches for ids in batch)


def test_too_many_waiting_inputs_is_overloaded() -> None:
    engine = ScriptedEngine(delay=0.05)
    batcher = MicroBatcher(engine, policy(batch_size=1, max_pending=3))

    async def go() -> None:
        try:
            busy = asyncio.ensure_future(batcher.embed([[1], [1], [1]]))
            await asyncio.sleep(0)
            with pytest.raises(OverloadedError):
                await batcher.embed([[2], [2]])
            await busy
        finally:
            await batcher.close()

    run(go())


def test_shorten_renormalises() -> None:
    vectors = np.array([[3.0, 4.0, 12.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    short = shorten(vectors, 2)
    np.testing.assert_allclose(short[0], [0.6, 0.8], atol=1e-6)
    assert np.all(np.isfinite(short[1]))  # an all-zero prefix stays finite


# --- forward passes inside one batch -----------------------------------------------------


def _rows(passes: list[slice]) -> list[int]:
    return [p.stop - p.start for p in passes]


def test_inputs_of_one_length_run_in_one_pass() -> None:
    assert plan_passes([32] * 32) == [slice(0, 32)]
    assert plan_passes([]) == []


def test_mixed_lengths_are_cut_where_padding_would_cost_more_than_a_pass() -> None:
    # One long input padded with five short ones: 6 x 200 positions, against two passes.
    assert plan_passes([200, 5, 5, 5, 5, 5], pass_cost=32) == [slice(0, 1), slice(1, 6)]
    # The passes cover every row once, in order.
    lengths = sorted((7 + (i * 37) % 40 for i in range(32)), reverse=True)
    passes = plan_passes(lengths, pass_cost=32)
    assert [r for p in passes for r in range(p.start, p.stop)] == list(range(32))
    assert 1 < len(passes) < 32


def test_cuts_follow_the_cost_of_a_pass() -> None:
    lengths = [40, 38, 30, 22, 20, 12, 10, 8]
    # Free passes: no padding at all is worth it; costly passes: one padded pass.
    assert _rows(plan_passes(lengths, pass_cost=0)) == [1] * 8
    assert plan_passes(lengths, pass_cost=10_000) == [slice(0, 8)]


def test_passes_are_bounded() -> None:
    assert max(_rows(plan_passes([16] * 1000, pass_cost=10_000))) <= MAX_PASS_ROWS
