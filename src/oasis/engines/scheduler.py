"""Continuous batching for one llama.cpp context: one decode per step for every sequence.

The context holds ``slots`` sequences, each in a KV stream of its own (llama.cpp's
non-unified cache), so a sequence's cells and attention never mix with another's and its
numbers come out the same whether it runs alone or beside others. Each generation runs on
a worker thread of its own (one per slot) and asks for its tokens to be evaluated with
:meth:`StepScheduler.decode`; the scheduler thread waits until every active sequence has
asked (or left), puts all their tokens into one ``llama_batch`` and decodes it once. A
sequence samples from its own rows of logits while the others wait for the next step, so
sampler chains, grammars and logprobs stay per sequence and need no locking.

Only the scheduler thread enters the runtime: memory operations (trimming a slot's cache,
copying a shared prompt) go through :meth:`StepScheduler.call`, run between steps. One
thread also means one OpenMP team, as before batching.

A sequence that joins as background work (a batch line) sits out every step while an
interactive sequence is active: it keeps its slot and cells and goes on once the live
requests have left, so they decode as fast as they would alone. One that its worker asks
to yield (:func:`~oasis.engines.worker.must_yield`) stops at its next step, or at once while
it sits out (withdrawing its request), raising :class:`~oasis.errors.PreemptedError`: its
thread and slot go to the live request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from oasis.engines.worker import must_yield
from oasis.errors import PreemptedError

log = logging.getLogger(__name__)

# How often a background sequence held out of the steps looks whether it must yield.
_YIELD_POLL = 0.02


@dataclass
class _Request:
    """Tokens one sequence wants evaluated in the next step."""

    slot: int
    tokens: Sequence[int]
    start: int  # position of the first token
    outputs: Sequence[bool]  # whether each token's logits are wanted
    rows: list[int] = field(default_factory=list)  # batch rows of the wanted logits
    background: bool = False  # held back while an interactive sequence is active
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


@dataclass
class _Call:
    fn: Callable[[], Any]
    decodes: bool = False  # it runs llama_decode, overwriting the last step's logits
    joined: bool = False  # its caller is an active sequence
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class StepScheduler:
    """The thread that owns one llama.cpp context and decodes every active sequence at once.

    ``decode_batch(entries)`` evaluates ``(slot, token, position, wants_logits)`` entries as
    one ``llama_batch`` (raising on failure); ``before_step`` runs before each decode (the
    thread count follows the load there). ``n_batch`` is the most tokens one step takes.
    """

    def __init__(
        self,
        name: str,
        decode_batch: Callable[[list[tuple[int, int, int, bool]]], None],
        n_batch: int,
        before_step: Callable[[], None] = lambda: None,
    ) -> None:
        self._decode_batch = decode_batch
        self._before_step = before_step
        self.n_batch = n_batch
        # Only the scheduler thread waits here; each sequence waits on its own request's
        # event, so a step wakes the sequences in it and nobody else.
        self._cond = threading.Condition()
        self._requests: list[_Request] = []
        self._calls: list[_Call] = []
        self._active = 0
        self._in_calls = 0  # active sequences waiting on a call
        self._interactive = 0  # active sequences that are not background work
        self._local = threading.local()  # whether the calling sequence is background work
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"{name} scheduler", daemon=True)
        self._thread.start()

    # --- called from the sequences' threads -------------------------------------------

    @property
    def active(self) -> int:
        """How many sequences are generating now (each takes part in every step)."""
        return self._active

    def join(self, background: bool = False) -> None:
        """Mark the calling sequence active: from now on no step runs without it (a
        ``background`` one: no step runs without it while no interactive one is active)."""
        self._local.background = background
        self._local.joined = True
        with self._cond:
            self._active += 1
            if not background:
                self._interactive += 1

    def leave(self) -> None:
        """The calling sequence is done (finished, cancelled or failed); its slot is free."""
        self._local.joined = False
        with self._cond:
            self._active -= 1
            if not self._local.background:
                self._interactive -= 1
            self._cond.notify()

    def call(self, fn: Callable[[], Any], *, decodes: bool = False) -> Any:
        """Run ``fn`` on the scheduler thread between steps and return what it returns.

        A call that ``decodes`` (it runs ``llama_decode`` itself, as an image's evaluation
        does) overwrites the logits that the sequences of the last step still sample
        from, so it waits until every active sequence is back: waiting on a step or on a
        call of its own.
        """
        call = _Call(fn, decodes, joined=getattr(self._local, "joined", False))
        with self._cond:
            self._calls.append(call)
            if call.joined:
                self._in_calls += 1
            self._cond.notify()
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def decode(
        self, slot: int, tokens: Sequence[int], start: int, outputs: Sequence[bool]
    ) -> list[int]:
        """Evaluate ``tokens`` at ``start…`` in ``slot`` in the next step and wait for it.

        Returns the batch rows of the tokens whose ``outputs`` flag is set: their logits
        (``llama_get_logits_ith``) stay valid until this sequence calls ``decode`` again
        or leaves, since no step runs before it does. The caller must have joined.
        """
        request = _Request(slot, tokens, start, outputs, background=self._local.background)
        if request.background and must_yield():
            raise PreemptedError()
        with self._cond:
            self._requests.append(request)
            self._cond.notify()
        if request.background:
            while not request.done.wait(_YIELD_POLL):
                if must_yield() and self._withdraw(request):
                    raise PreemptedError()
        else:
            request.done.wait()
        if request.error is not None:
            raise request.error
        return request.rows

    def _withdraw(self, request: _Request) -> bool:
        """Take back ``request`` unless a step has taken it already."""
        with self._cond:
            for i, waiting in enumerate(self._requests):
                if waiting is request:
                    del self._requests[i]
                    return True
            return False

    def close(self) -> None:
        """Stop the thread once the running sequences have left (the worker waits for them)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    # --- the scheduler thread ---------------------------------------------------------

    def _step_ready(self) -> bool:
        # Every active sequence has asked: nothing more would join this step by waiting,
        # and no sequence still reads the logits of the last one.
        return bool(self._requests) and len(self._requests) >= self._active

    def _runnable_calls(self) -> list[_Call]:
        # No sequence reads logits now: each active one waits on a step or on a call.
        quiet = len(self._requests) + self._in_calls >= self._active
        return [call for call in self._calls if quiet or not call.decodes]

    def _ready(self) -> bool:
        return bool(self._runnable_calls()) or self._step_ready()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._ready() and not self._closed:
                    self._cond.wait()
                if not self._ready():
                    return  # closed, and nobody is waiting
                calls = self._runnable_calls()
                self._calls = [call for call in self._calls if call not in calls]
            for call in calls:
                try:
                    call.result = call.fn()
                except BaseException as exc:  # handed to the caller's thread
                    call.error = exc
                if call.joined:
                    with self._cond:  # before done: its caller may ask for a step at once
                        self._in_calls -= 1
                call.done.set()
            # The step that was ready goes on at once: a joining sequence's call (trimming
            # its slot) costs the others no round of waking.
            with self._cond:
                step = self._take() if self._step_ready() else []
            if step:
                self._run(step)

    def _take(self) -> list[_Request]:
        """The requests of the next step, in arrival order, up to ``n_batch`` tokens.

        A request that does not fit whole waits for the next step (it is never split: the
        caller chose its chunk, and how a prompt is chunked decides its rounding).
        """
        step: list[_Request] = []
        budget = self.n_batch
        # While a live sequence is active, background ones wait (they have asked, so they
        # still count for _ready; they are simply not taken).
        hold = self._interactive > 0
        for request in self._requests:
            if hold and request.background:
                continue
            if len(request.tokens) <= budget:
                step.append(request)
                budget -= len(request.tokens)
        if not step:  # larger than a batch: the caller's mistake, failed below
            step = [next(r for r in self._requests if not (hold and r.background))]
        for request in step:
            self._requests.remove(request)
        return step

    def _run(self, step: list[_Request]) -> None:
        entries: list[tuple[int, int, int, bool]] = []
        # In slot order: llama.cpp puts sequences of separate KV streams into one ubatch
        # only when their ids come in increasing, consecutive order.
        for request in sorted(step, key=lambda r: r.slot):
            for i, (token, wanted) in enumerate(zip(request.tokens, request.outputs, strict=True)):
                if wanted:
                    request.rows.append(len(entries))
                entries.append((request.slot, token, request.start + i, wanted))
        try:
            self._before_step()
            self._decode_batch(entries)
        except BaseException as exc:  # every sequence of the step hears of it
            log.exception("decoding a step of %d tokens failed", len(entries))
            for request in step:
                request.error = exc
        for request in step:
            request.done.set()


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    shared = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        shared += 1
    return shared


@dataclass
class Slot:
    """One sequence of the context: ``tokens`` are what its KV cells hold, in order.

    A finished sequence keeps its cells, so a chained turn that comes back to them
    evaluates only what is new."""

    index: int
    tokens: list[int] = field(default_factory=list)
    busy: bool = False
    used: int = 0  # when it was last handed out (a counter), for least-recently-used
    key: str | None = None  # the prompt_cache_key of the last request it served


class SlotPool:
    """The context's sequences, handed to generations by the prefix they share."""

    def __init__(self, size: int) -> None:
        self._slots = [Slot(i) for i in range(size)]
        self._lock = threading.Lock()
        self._clock = 0

    def acquire(self, prompt: Sequence[int], key: str | None = None) -> Slot:
        """A free slot for ``prompt``: the one holding the longest prefix of it when that
        keeps at least half of what the slot holds (a continued conversation) or all of
        ``prompt`` but its last token (the same prompt asked again, whatever the length of
        the answer it got before), else the least recently used, so that a prompt sharing
        only a system prompt with a cached conversation does not evict it. A ``key``
        (``prompt_cache_key``) says the prefix is worth more than the rest: a slot that
        served the same key is reused whenever it shares any prefix, its tail given up.
        There is always a free slot: the worker runs no more generations at once than
        there are slots."""
        with self._lock:
            free = [slot for slot in self._slots if not slot.busy]
            assert free, "more generations than slots"
            best = max(free, key=lambda slot: (common_prefix(slot.tokens, prompt), -slot.used))
            shared = common_prefix(best.tokens, prompt)
            same_key = key is not None and best.key == key and shared > 0
            # The engine evaluates the last prompt token afresh in any case.
            asked_again = shared > 0 and shared >= len(prompt) - 1
            if 2 * shared < len(best.tokens) and not same_key and not asked_again:
                # Among equals the lowest index: sequences with consecutive ids decode in
                # one ubatch (see StepScheduler._run).
                best = min(free, key=lambda slot: (slot.used, slot.index))
            self._clock += 1
            best.busy, best.used, best.key = True, self._clock, key
            return best

    def release(self, slot: Slot) -> None:
        with self._lock:
            slot.busy = False


class SharedPrompt:
    """The choices of one request (``n``): the first evaluates the prompt, the others wait
    for it and copy its cells instead of evaluating the prompt again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leader: Slot | None = None
        self._ready = threading.Event()

    def follow(self, slot: Slot) -> Slot | None:
        """None for the first choice (it evaluates); for the others, once the first has
        evaluated the prompt (or given up), the slot that holds it."""
        with self._lock:
            if self._leader is None:
                self._leader = slot
                return None
        self._ready.wait()
        return self._leader

    def ready(self) -> None:
        """The first choice has evaluated the prompt (or ended without it)."""
        self._ready.set()
