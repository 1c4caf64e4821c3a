"""How many CPU threads a runtime should use: the CPUs this process may run on, less what
other processes are keeping busy right now.

A compute runtime whose threads meet at barriers (llama.cpp's, through OpenMP) collapses
when it has more threads than free cores: one thread is preempted and the others wait for
it at every barrier, hundreds of times per token. So the thread count follows the load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection

_TICK = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which ``taskset`` or a
    container may narrow), falling back to the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def busy_seconds(cpus: Collection[int]) -> float | None:
    """CPU seconds spent not idle on ``cpus`` since boot, from ``/proc/stat`` (None where
    there is no such file)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            lines = stat.readlines()
    except OSError:
        return None
    names = {f"cpu{cpu}" for cpu in cpus}
    ticks = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in names:
            # user nice system idle iowait irq softirq steal (guest is within user)
            values = [int(v) for v in fields[1:9]]
            ticks += sum(values) - values[3] - values[4]
    return ticks * _TICK


class CpuShare:
    """Picks, at most once per ``interval`` seconds, how many of ``limit`` threads to run:
    as many as there are CPUs that other processes left idle over the last interval, at
    least one. This process's own CPU time is not counted against it.

    A window much longer than ``interval`` means the runtime sat idle: what others did
    while nobody asked says little about now (a client that was busy before sending its
    request has stopped), so the next request starts at the limit and is measured afresh.
    """

    def __init__(self, limit: int, interval: float = 0.25) -> None:
        try:
            self._cpus: Collection[int] = os.sched_getaffinity(0)
        except AttributeError:
            self._cpus = range(os.cpu_count() or 1)
        self.limit = max(1, limit)
        self._interval = interval
        self._threads = self.limit
        self._at = time.monotonic()
        self._busy = busy_seconds(self._cpus)
        self._own = time.process_time()

    def threads(self) -> int:
        """The thread count to use now; cheap enough to ask before every step."""
        now = time.monotonic()
        elapsed = now - self._at
        if self._busy is None or elapsed < self._interval:
            return self._threads
        busy = busy_seconds(self._cpus)
        own = time.process_time()
        if busy is None:
            return self._threads
        if elapsed > max(1.0, 4 * self._interval):
            self._threads = self.limit
            self._at, self._busy, self._own = now, busy, own
            return self._threads
        others = max(0.0, (busy - self._busy) - (own - self._own)) / elapsed
        idle = int(len(self._cpus) - others + 0.5)
        self._threads = max(1, min(self.limit, idle))
        self._at, self._busy, self._own = now, busy, own
        return self._threads
