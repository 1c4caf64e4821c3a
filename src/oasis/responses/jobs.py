"""Background responses: tasks in this process, live event logs, recovery after a crash.

The response row is the durable job record: it is stored ``queued`` before the task
starts and every state change is written back. Events of a streamed background response
go to an in-memory :class:`EventLog` (for live followers) and, in batches, to the
``response_events`` table (for replay after the job ends or the server restarts, and
for followers on other replicas).

With replicas (:mod:`oasis.services.leases`) the replica that stores a job leases it and
runs it; a cancel that arrives elsewhere reaches it as a stop request on the lease; a job
whose replica died is adopted by another, which records it ``failed`` (as a restart
does on SQLite).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from oasis.services.leases import Leases
from oasis.store import Store, StoredResponse

log = logging.getLogger(__name__)

Event = tuple[int, str, str]  # sequence_number, type, JSON


@dataclass
class EventLog:
    """The events of one running response, followed by any number of readers."""

    events: list[Event] = field(default_factory=list)
    closed: bool = False
    flushed: int = 0  # events[:flushed] are in the database
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, event: Event) -> None:
        self.events.append(event)
        self._notify()

    def close(self) -> None:
        self.closed = True
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self, after: int = -1) -> AsyncIterator[Event]:
        """Events with ``sequence_number > after``, then live ones until the log closes."""
        index = 0
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if event[0] > after:
                    yield event
            if self.closed:
                return
            await self._changed.wait()


# "lost": another replica took the job over (this one's lease lapsed while it stalled).
StopReason = Literal["cancel", "shutdown", "lost"]
LEASE = "response"  # the lease kind of a background response
INTERRUPTED = "The server stopped before this response finished."
FINAL_STATUSES = frozenset({"completed", "failed", "incomplete", "cancelled"})


@dataclass
class Job:
    """One background response running in this process, and how it is to end.

    A job is stopped at most once (its task is cancelled once, for the first of a cancel
    request or a shutdown), and never after its final write has begun, so nothing can cut
    that write short: the final state is written exactly once.
    """

    response_id: str
    log: EventLog
    task: asyncio.Task[None] | None = None
    stop_reason: StopReason | None = None
    started: bool = False
    final: asyncio.Future[object] | None = None

    @property
    def finishing(self) -> bool:
        """True once the final write has begun (the job's end is decided)."""
        return self.final is not None

    def stop(self, reason: StopReason) -> None:
        """Ask the job to end; only the first request counts, and none after it finishes."""
        if self.stop_reason is not None or self.final is not None:
            return
        self.stop_reason = reason
        # A task cancelled before its first step never runs its body (and so could not
        # record its end); such a job cancels itself when it starts (see _main).
        if self.task is not None and self.started:
            self.task.cancel()

    async def finish(self, write: Coroutine[Any, Any, object]) -> object:
        """Run the job's one final write, shielded, and wait for it; what it returns.

        A stop that comes while it runs is not delivered (see :meth:`stop`); the shield
        also keeps a cancellation from outside (the event loop closing) from cutting it.
        """
        if self.final is not None:
            write.close()
            raise RuntimeError(f"response {self.response_id} already has its final write")
        self.final = asyncio.ensure_future(write)
        return await asyncio.shield(self.final)


class BackgroundJobs:
    """The running background responses of this process."""

    def __init__(self, store: Store, leases: Leases | None = None) -> None:
        self.store = store
        self.leases = leases or Leases(None)
        self._jobs: dict[str, Job] = {}
        self.closing = False
        # Stop requests that came for a job before its task began (see _stop_requested).
        self._stopped_early: set[str] = set()
        self.leases.on_stop(LEASE, self._stop_requested)

    def _stop_requested(self, response_id: str, lost: bool) -> None:
        """Another replica cancelled a job this one leased (maybe before it began), or
        adopted it (``lost``): either way its task stops; whoever ends it first wins."""
        job = self._jobs.get(response_id)
        if job is not None:
            job.stop("lost" if lost else "cancel")
        elif not lost:
            self._stopped_early.add(response_id)

    @property
    def running(self) -> int:
        """How many background responses this process is running now."""
        return len(self._jobs)

    def start(
        self, response_id: str, log_: EventLog, run: Callable[[Job], Coroutine[Any, Any, None]]
    ) -> None:
        if self.closing:
            # Shutting down: the row stays queued and the next start marks it failed.
            log.warning("not starting background response %s: shutting down", response_id)
            return
        job = Job(response_id, log_)
        job.task = asyncio.create_task(self._main(job, run), name=f"response {response_id}")
        self._jobs[response_id] = job
        job.task.add_done_callback(lambda _: self._jobs.pop(response_id, None))
        if response_id in self._stopped_early:
            self._stopped_early.discard(response_id)
            job.stop("cancel")

    async def _main(self, job: Job, run: Callable[[Job], Coroutine[Any, Any, None]]) -> None:
        job.started = True
        if job.stop_reason is not None and job.task is not None:
            # Stopped before it began: the cancellation lands at run's first await, inside
            # its own handler, which records the end state.
            job.task.cancel()
        try:
            await run(job)
        finally:
            await asyncio.shield(self.leases.release(LEASE, job.response_id))

    def live(self, response_id: str) -> EventLog | None:
        job = self._jobs.get(response_id)
        return None if job is None else job.log

    async def cancel(self, response_id: str) -> bool:
        """Stop a running job and wait until it has recorded its end; False if none runs.

        Any number of concurrent callers (cancels, deletes, a shutdown) share the one stop
        and all wait for the same end. Waiting does not cancel the job if a caller is itself
        cancelled (a client hanging up).
        """
        job = self._jobs.get(response_id)
        if job is None or job.task is None:
            return False
        job.stop("cancel")
        await asyncio.wait([job.task])
        return True

    async def flush(self, response_id: str, log_: EventLog) -> None:
        """Write the log's unwritten events to the database."""
        pending = log_.events[log_.flushed :]
        if pending:
            await self.store.events.append(response_id, pending)
            log_.flushed += len(pending)

    async def recover(self) -> int:
        """Mark responses a previous process left unfinished as ``failed``; returns how many.

        Their generation died with that process; resuming would re-run the model from
        scratch with different sampling, so an honest ``failed`` is recorded instead.
        With replicas, only the jobs no live replica holds are theirs to end (see
        :meth:`adopt_orphans`).
        """
        if self.leases.shared:
            return await self.adopt_orphans()
        count = 0
        for row in await self.store.responses.unfinished():
            count += await self.end_orphan(row, "failed")
        if count:
            log.warning("marked %d interrupted background response(s) as failed", count)
        return count

    async def adopt_orphans(self) -> int:
        """Replicas: end the jobs whose replica died (their lease expired) as ``failed``."""
        rows = {row.id: row for row in await self.store.responses.unfinished()}
        count = 0
        for response_id in await self.leases.orphans(LEASE, list(rows)):
            if response_id in self._jobs or not await self.leases.claim(LEASE, response_id):
                continue
            try:
                count += await self.end_orphan(rows[response_id], "failed")
            finally:
                await self.leases.release(LEASE, response_id)
        if count:
            log.warning("marked %d background response(s) of a stopped replica failed", count)
        return count

    async def end_orphan(self, row: StoredResponse, status: Literal["failed", "cancelled"]) -> int:
        """Record the end of a job that no task runs; 1 if this wrote it, else 0.

        ``failed`` gets the error and (for a streamed job) a ``response.failed`` event for
        followers; ``cancelled`` gets neither, as when a running job is cancelled.
        """
        body = {**row.body, "status": status}
        if status == "failed":
            body["error"] = {"code": "server_error", "message": INTERRUPTED}
        if not await self.store.responses.update_snapshot(row.owner, body):
            return 0  # it ended meanwhile
        if row.stream and status == "failed":
            seq = await self.store.events.last_seq(row.id) + 1
            event = {"type": "response.failed", "sequence_number": seq, "response": body}
            await self.store.events.append(row.id, [(seq, "response.failed", json.dumps(event))])
        return 1

    async def stop_anywhere(self, row: StoredResponse, poll: float = 0.1) -> None:
        """Cancel a job that no task of this process runs, and wait until it has ended.

        If another replica runs it, that replica is asked to stop it (through the lease)
        and records the end itself; if none does (it never started, or its replica died),
        the end is recorded here. Returns once the row is final or gone.
        """
        if await self.leases.request_stop(LEASE, row.id):
            deadline = asyncio.get_running_loop().time() + 3 * self.leases.ttl
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(poll)
                now = await self.store.responses.get(row.owner, row.id)
                if now is None or now.status in FINAL_STATUSES:
                    return
                if not await self.leases.running_elsewhere(LEASE, row.id):
                    break  # its replica died before it could stop it
        if not await self.leases.claim(LEASE, row.id):
            return  # another replica is ending it right now
        try:
            latest = await self.store.responses.get(row.owner, row.id)
            if latest is not None:
                await self.end_orphan(latest, "cancelled")
        finally:
            await self.leases.release(LEASE, row.id)

    async def close(self) -> None:
        """Stop every job at shutdown; the next start marks them failed (see recover)."""
        self.closing = True
        jobs = list(self._jobs.values())
        for job in jobs:
            job.stop("shutdown")
        tasks = [job.task for job in jobs if job.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
