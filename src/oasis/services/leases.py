"""Which replica runs each piece of background work, when several share one database.

On PostgreSQL any number of ``oasis serve`` processes may share the database. A background
job (a response, a batch, a file being indexed) is run by the replica that holds its lease
(:mod:`oasis.store.leases`); a heartbeat renews this replica's leases and delivers the
stop requests other replicas left on them (a cancel that arrived elsewhere); when a
holder dies its leases expire and the sweeps of the others adopt its jobs.

On SQLite there is one process: every claim succeeds without a row, nothing is renewed,
and a restart recovers unfinished work as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable

from oasis.core.tasks import cancel_and_wait
from oasis.store.leases import Fence, LeaseRepository

log = logging.getLogger(__name__)

# Called as ``hook(job_id, lost)`` when another replica asks this one to stop a job it
# runs (``lost`` False), or when this one lost the lease: it expired and another replica
# may have taken the job over (``lost`` True: stop without recording anything).
StopHook = Callable[[str, bool], None]


def replica_id() -> str:
    """A name for this process, unique among replicas: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Leases:
    """This replica's leases; disabled (every claim granted) without a repository."""

    def __init__(self, repo: LeaseRepository | None, *, ttl: float = 10.0) -> None:
        self.repo = repo
        self.ttl = ttl
        self.holder = replica_id()
        self._held: set[tuple[str, str]] = set()
        self._fences: dict[tuple[str, str], Fence] = {}  # of the leases held
        self._claiming: set[tuple[str, str]] = set()  # claims in flight
        self._stopped: set[tuple[str, str]] = set()  # stop requests already delivered
        self._hooks: dict[str, StopHook] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        """True when other replicas may share the database (leases are kept in it)."""
        return self.repo is not None

    @property
    def heartbeat(self) -> float:
        """Seconds between renewals: often enough that a stop request lands within one."""
        return min(1.0, self.ttl / 4)

    def on_stop(self, kind: str, hook: StopHook) -> None:
        """Call ``hook(job_id, lost)`` when a job of ``kind`` this replica runs must stop."""
        self._hooks[kind] = hook

    async def claim(self, kind: str, job_id: str) -> bool:
        """Take the job for this replica; False if another replica runs it."""
        if self.repo is None:
            return True
        key = (kind, job_id)
        self._claiming.add(key)
        try:
            fence = await self.repo.claim(kind, job_id, self.holder, self.ttl)
            if fence is None:
                return False
        finally:
            self._claiming.discard(key)
        self._held.add(key)
        self._fences[key] = fence
        return True

    def fence(self, kind: str, job_id: str) -> Fence | None:
        """The fencing token of this replica's claim on the job, for writes that must be
        refused once another replica has taken it over; None without leases (or unheld)."""
        return self._fences.get((kind, job_id))

    async def release(self, kind: str, job_id: str) -> None:
        """The job has ended here."""
        if self.repo is None:
            return
        self._held.discard((kind, job_id))
        self._fences.pop((kind, job_id), None)
        self._stopped.discard((kind, job_id))
        with contextlib.suppress(Exception):  # an unreleased lease simply expires
            await self.repo.release(kind, job_id, self.holder)

    async def request_stop(self, kind: str, job_id: str) -> bool:
        """Ask the replica running the job to stop it; False if no replica runs it."""
        if self.repo is None:
            return False
        return await self.repo.request_stop(kind, job_id)

    async def running_elsewhere(self, kind: str, job_id: str) -> bool:
        """Whether a live lease on the job exists (held by any replica)."""
        if self.repo is None:
            return False
        return job_id in await self.repo.live(kind)

    async def orphans(self, kind: str, candidates: list[str]) -> list[str]:
        """Of ``candidates`` (unfinished jobs), those no replica holds a live lease on."""
        if self.repo is None or not candidates:
            return []
        live = await self.repo.live(kind)
        return [job_id for job_id in candidates if job_id not in live]

    def start(self) -> None:
        """Begin renewing (only when the database is shared)."""
        if self.repo is not None and self._task is None:
            self._task = asyncio.create_task(self._beat(), name="lease heartbeat")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _beat(self) -> None:
        assert self.repo is not None
        while True:
            await asyncio.sleep(self.heartbeat)
            before = set(self._held)
            try:
                renewed = await self.repo.renew(self.holder, self.ttl)
            except Exception:
                log.exception("lease heartbeat failed; retrying")
                continue
            kept = {(r.kind, r.job_id) for r in renewed}
            for lease in renewed:
                key = (lease.kind, lease.job_id)
                if lease.stop and key in self._held and key not in self._stopped:
                    self._stopped.add(key)
                    self._stop(*key, lost=False)
            # Held all along but not renewed: it expired and another replica took it.
            for kind, job_id in (before & self._held) - kept:
                log.warning("lost the lease on %s %s to another replica", kind, job_id)
                self._held.discard((kind, job_id))
                self._stop(kind, job_id, lost=True)
            # Renewed but no longer wanted: a release that failed.
            for kind, job_id in kept - self._held - self._claiming:
                with contextlib.suppress(Exception):
                    await self.repo.release(kind, job_id, self.holder)

    def _stop(self, kind: str, job_id: str, *, lost: bool) -> None:
        hook = self._hooks.get(kind)
        if hook is not None:
            hook(job_id, lost)
