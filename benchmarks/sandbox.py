"""What the code_interpreter sandbox costs, measured side by side in one run.

Interleaved repetitions of

* **cold start**: a new container's first call, ``print(1)``: bubblewrap builds the
  namespaces and mounts, the kernel starts, lowers its limits, runs the code, answers;
* **warm call**: ``print(1)`` in a kernel that is already running (what every later call
  of a container costs);
* **host**: ``python -c 'print(1)'`` started on the host, unsandboxed (the cheapest way to
  run a line of Python in a fresh process, for scale);

plus, once per repetition, ``import numpy, matplotlib.pyplot`` in a fresh kernel (what a
first data-analysis call adds), and 100,000 ``os.getppid()`` calls in a warm kernel. Each
sandbox measurement is taken twice, interleaved: as the server runs kernels (under the
seccomp filter) and without the filter, to show what the filter costs. Every call
includes the sync of the container's files between the host and the sandbox's
``/mnt/data``. Reported: medians, the ratios warm ÷ host and cold ÷ host, and each
with-filter median ÷ its without-filter one.

    .venv/bin/python benchmarks/sandbox.py [--reps 15]

Writes benchmarks/results/sandbox.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from harness import write_result  # noqa: E402
from oasis.sandbox import Limits, Sandboxes  # noqa: E402


async def _timed(sandboxes: Sandboxes, container: str, work: Path, code: str) -> float:
    started = time.perf_counter()
    result = await sandboxes.execute(container, work, code, memory_bytes=1 << 30)
    elapsed = time.perf_counter() - started
    assert result.error is None, result.logs
    return elapsed


def _host() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "print(1)"], check=True, capture_output=True)
    return time.perf_counter() - started


# 100,000 system calls in a warm kernel: where a per-call filter cost would show.
SYSCALLS = "import os\nfor _ in range(100_000):\n    os.getppid()"


async def _sandboxes(seccomp: bool) -> Sandboxes:
    sandboxes = Sandboxes(Limits(), max_kernels=4)
    if not await sandboxes.probe():
        raise SystemExit(f"no sandbox here: {sandboxes.unavailable}")
    if sandboxes.seccomp is None:
        raise SystemExit("no seccomp filter on this machine: nothing to compare")
    if not seccomp:
        sandboxes.seccomp = None  # the comparison only: the server never runs this way
    await sandboxes.warmed()
    return sandboxes


async def _one_rep(
    sandboxes: Sandboxes, work: Path, name: str, times: dict[str, list[float]]
) -> None:
    container = f"bench-{name}"
    times["cold"].append(await _timed(sandboxes, container, work, "print(1)"))
    for _ in range(5):
        times["warm"].append(await _timed(sandboxes, container, work, "print(1)"))
    times["syscalls"].append(await _timed(sandboxes, container, work, SYSCALLS))
    await sandboxes.discard(container)
    fresh = f"bench-import-{name}"
    await _timed(sandboxes, fresh, work, "print(1)")
    times["imports"].append(await _timed(sandboxes, fresh, work, "import numpy, matplotlib.pyplot"))
    await sandboxes.discard(fresh)


async def measure(reps: int) -> dict[str, object]:
    sides = {"filtered": await _sandboxes(True), "bare": await _sandboxes(False)}
    times: dict[str, dict[str, list[float]]] = {
        side: {"cold": [], "warm": [], "imports": [], "syscalls": []} for side in sides
    }
    host: list[float] = []
    with tempfile.TemporaryDirectory(prefix="oasis-bench-") as tmp:
        for rep in range(reps):
            order = list(sides) if rep % 2 == 0 else list(reversed(sides))
            for side in order:
                work = Path(tmp) / f"{side}-{rep}"
                work.mkdir()
                await _one_rep(sides[side], work, f"{side}-{rep}", times[side])
            host.append(_host())
    for sandboxes in sides.values():
        await sandboxes.close()

    def median_ms(side: str, kind: str) -> float:
        return statistics.median(times[side][kind]) * 1000

    ms = {
        "cold_start_ms": median_ms("filtered", "cold"),
        "warm_call_ms": median_ms("filtered", "warm"),
        "host_python_c_ms": statistics.median(host) * 1000,
        "import_numpy_matplotlib_ms": median_ms("filtered", "imports"),
        "cold_start_no_seccomp_ms": median_ms("bare", "cold"),
        "warm_call_no_seccomp_ms": median_ms("bare", "warm"),
        "import_numpy_matplotlib_no_seccomp_ms": median_ms("bare", "imports"),
        "getppid_100k_ms": median_ms("filtered", "syscalls"),
        "getppid_100k_no_seccomp_ms": median_ms("bare", "syscalls"),
    }
    return {
        "reps": reps,
        **{k: round(v, 2) for k, v in ms.items()},
        "warm_over_host": round(ms["warm_call_ms"] / ms["host_python_c_ms"], 3),
        "cold_over_host": round(ms["cold_start_ms"] / ms["host_python_c_ms"], 3),
        "seccomp_cold_ratio": round(ms["cold_start_ms"] / ms["cold_start_no_seccomp_ms"], 3),
        "seccomp_warm_ratio": round(ms["warm_call_ms"] / ms["warm_call_no_seccomp_ms"], 3),
        "seccomp_syscalls_ratio": round(
            ms["getppid_100k_ms"] / ms["getppid_100k_no_seccomp_ms"], 3
        ),
        "seccomp_import_ratio": round(
            ms["import_numpy_matplotlib_ms"] / ms["import_numpy_matplotlib_no_seccomp_ms"], 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    write_result("sandbox", asyncio.run(measure(args.reps)))


if __name__ == "__main__":
    main()
