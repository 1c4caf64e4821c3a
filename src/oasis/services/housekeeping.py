"""Clean-up that runs in the background: expired files and uploads, orphaned bytes.

Each job is an async callable returning how many things it removed. A job's failure is
logged and retried at the next round; it never stops the server or the other jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from oasis.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[int]]


class Housekeeping:
    """Runs ``once`` jobs at start, then ``periodic`` jobs every ``interval`` seconds."""

    def __init__(self, periodic: Sequence[Job], *, once: Sequence[Job] = (), interval: float = 60):
        self.periodic = list(periodic)
        self.once = list(once)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the rounds (the first one runs at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="housekeeping")

    async def close(self) -> None:
        """Stop the rounds, waiting for a job in progress to be cancelled."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        await self._round(self.once)
        while True:
            await self._round(self.periodic)
            await asyncio.sleep(self.interval)

    @staticmethod
    async def _round(jobs: Sequence[Job]) -> None:
        for job in jobs:
            try:
                removed = await job()
            except Exception:
                log.exception("housekeeping job %s failed", getattr(job, "__qualname__", job))
                continue
            if removed:
                log.info("housekeeping: %s handled %d", getattr(job, "__qualname__", job), removed)
