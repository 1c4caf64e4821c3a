"""Background responses: tasks in this process, live event logs, recovery after a crash.

The response row is the durable job record: it is stored ``queued`` before the task
starts and every state change is written back. Events of a streamed background response
go to an in-memory :class:`EventLog` (for live followers) and, in batches, to the
``response_events`` table (for replay after the job ends or the server restarts).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from oasis.store.repository import Store

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


@dataclass
class _Job:
    task: asyncio.Task[None]
    log: EventLog


class BackgroundJobs:
    """The running background responses of this process."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._jobs: dict[str, _Job] = {}
        self.closing = False

    def start(
        self, response_id: str, log_: EventLog, run: Callable[[EventLog], Coroutine[Any, Any, None]]
    ) -> None:
        if self.closing:
            # Shutting down: the row stays queued and the next start marks it failed.
            log.warning("not starting background response %s: shutting down", response_id)
            return
        task = asyncio.create_task(run(log_), name=f"response {response_id}")
        self._jobs[response_id] = _Job(task, log_)
        task.add_done_callback(lambda _: self._jobs.pop(response_id, None))

    def live(self, response_id: str) -> EventLog | None:
        job = self._jobs.get(response_id)
        return None if job is None else job.log

    async def cancel(self, response_id: str) -> bool:
        """Stop a running job and wait until it has recorded ``cancelled``."""
        job = self._jobs.get(response_id)
        if job is None:
            return False
        job.task.cancel()
        await asyncio.wait([job.task])
        return True

    async def flush(self, response_id: str, log_: EventLog) -> None:
        """Write the log's unwritten events to the database."""
        pending = log_.events[log_.flushed :]
        if pending:
            await self.store.append_events(response_id, pending)
            log_.flushed += len(pending)

    async def recover(self) -> int:
        """Mark responses a previous process left unfinished as ``failed``; returns how many.

        Their generation died with that process; resuming would re-run the model from
        scratch with different sampling, so an honest ``failed`` is recorded instead.
        """
        count = 0
        for row in await self.store.unfinished():
            body = dict(row.body)
            body["status"] = "failed"
            body["error"] = {
                "code": "server_error",
                "message": "The server stopped before this response finished.",
            }
            await self.store.update_snapshot(row.owner, body)
            if row.stream:
                seq = await self.store.last_event_seq(row.id) + 1
                event = {"type": "response.failed", "sequence_number": seq, "response": body}
                await self.store.append_events(
                    row.id, [(seq, "response.failed", json.dumps(event))]
                )
            count += 1
        if count:
            log.warning("marked %d interrupted background response(s) as failed", count)
        return count

    async def close(self) -> None:
        """Stop every job at shutdown; the next start marks them failed (see recover)."""
        self.closing = True
        tasks = [job.task for job in self._jobs.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
