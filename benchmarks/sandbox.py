"""What the code_interpreter sandbox costs, measured side by side in one run.

Interleaved repetitions of

* **cold start**: a new container's first call, ``print(1)``: bubblewrap builds the
  namespaces and mounts, the kernel starts, lowers its limits, runs the code, answers;
* **warm call**: ``print(1)`` in a kernel that is already running (what every later call
  of a container costs);
* **host**: ``python -c 'print(1)'`` started on the host, unsandboxed (the cheapest way to
  run a line of Python in a fresh process, for scale);

plus, once per repetition, ``import numpy, matplotlib.pyplot`` in a fresh kernel (what a
first data-analysis call adds). Reported: medians, and the ratios warm ÷ host and
cold ÷ host.

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


async def measure(reps: int) -> dict[str, object]:
    sandboxes = Sandboxes(Limits(), max_kernels=4)
    if not await sandboxes.probe():
        raise SystemExit(f"no sandbox here: {sandboxes.unavailable}")
    await sandboxes.warmed()
    cold: list[float] = []
    warm: list[float] = []
    host: list[float] = []
    imports: list[float] = []
    with tempfile.TemporaryDirectory(prefix="oasis-bench-") as tmp:
        for rep in range(reps):
            work = Path(tmp) / f"c{rep}"
            work.mkdir()
            container = f"bench-{rep}"
            cold.append(await _timed(sandboxes, container, work, "print(1)"))
            for _ in range(5):
                warm.append(await _timed(sandboxes, container, work, "print(1)"))
            host.append(_host())
            await sandboxes.discard(container)
            fresh = f"bench-import-{rep}"
            await _timed(sandboxes, fresh, work, "print(1)")
            imports.append(await _timed(sandboxes, fresh, work, "import numpy, matplotlib.pyplot"))
            await sandboxes.discard(fresh)
    await sandboxes.close()
    ms = {
        "cold_start_ms": statistics.median(cold) * 1000,
        "warm_call_ms": statistics.median(warm) * 1000,
        "host_python_c_ms": statistics.median(host) * 1000,
        "import_numpy_matplotlib_ms": statistics.median(imports) * 1000,
    }
    return {
        "reps": reps,
        **{k: round(v, 2) for k, v in ms.items()},
        "warm_over_host": round(ms["warm_call_ms"] / ms["host_python_c_ms"], 3),
        "cold_over_host": round(ms["cold_start_ms"] / ms["host_python_c_ms"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    write_result("sandbox", asyncio.run(measure(args.reps)))


if __name__ == "__main__":
    main()
