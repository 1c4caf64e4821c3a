"""engines/cpu.py: the thread count a runtime uses follows the CPUs other processes leave
idle, so a model never runs more threads than there are free cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from oasis.config import Settings
from oasis.engines.cpu import CpuShare, available_cpus, busy_seconds

linux_only = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs /proc/stat")


def test_default_threads_follow_the_affinity_mask() -> None:
    assert Settings().threads == available_cpus() == len(os.sched_getaffinity(0))


@linux_only
def test_busy_seconds_grow_with_work() -> None:
    cpus = os.sched_getaffinity(0)
    before = busy_seconds(cpus)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        pass
    after = busy_seconds(cpus)
    assert before is not None and after is not None
    assert after - before >= 0.1  # at least part of our own 0.3 s of spinning


@contextmanager
def every_cpu_spinning() -> Iterator[None]:
    """A spinning process per CPU, for the length of the block."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(available_cpus())
    ]
    try:
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


@linux_only
def test_every_cpu_busy_elsewhere_leaves_one_thread() -> None:
    """With a spinning process per CPU, others use every core: one thread, not all."""
    share = CpuShare(limit=max(2, available_cpus()), interval=0.2)
    assert share.threads() == share.limit  # nothing measured yet
    with every_cpu_spinning():
        time.sleep(0.3)
        share.threads()  # a window that may still include the start-up
        time.sleep(0.5)
        assert share.threads() == 1


@linux_only
def test_a_request_after_an_idle_gap_starts_at_the_limit() -> None:
    """What others did while the runtime sat idle is not held against its next request
    (a client busy before it sends has stopped); the load is measured afresh."""
    share = CpuShare(limit=max(2, available_cpus()), interval=0.2)
    with every_cpu_spinning():
        time.sleep(0.3)
        share.threads()
        time.sleep(0.5)
        assert share.threads() == 1
        time.sleep(1.2)  # idle: past max(1 s, 4 intervals)
        assert share.threads() == share.limit
        time.sleep(0.3)
        assert share.threads() == 1  # the fresh window sees the spinners again


def test_never_more_than_the_limit_nor_fewer_than_one() -> None:
    share = CpuShare(limit=0, interval=0.0)
    assert share.limit == 1
    for _ in range(3):
        assert share.threads() == 1
        time.sleep(0.01)
