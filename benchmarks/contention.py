"""Single-stream decode under CPU contention: oasis vs raw llama-cpp-python, side by side.

Each repetition runs the same streamed turn four ways, interleaved so that background
noise hits every side alike: raw and oasis on a quiet machine, then raw and oasis with
``--busy`` competing processes (a plain ``while True`` loop each, pinned nowhere) beside
them. The raw side uses ``--threads`` threads as a library user would (all the CPUs);
oasis runs with its defaults. The raw side with one thread is measured under contention
too, as the best a fixed thread count could do.

    .venv/bin/python benchmarks/contention.py --reps 5 --tokens 128

Target: oasis / raw decode tokens/s under contention >= 0.9, and the quiet ratio unchanged
(see chat_overhead.py). Writes benchmarks/results/contention.json with the load average
seen, since other work on the machine moves every absolute number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import start_server  # noqa: E402

from side_by_side import (  # noqa: E402
    MODEL,
    Run,
    client_for,
    load_raw,
    model_path,
    oasis_run,
    raw_run,
)


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes spinning on a CPU each until the block ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    time.sleep(0.5)  # let the scheduler see them before measuring
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def available_cpus() -> int:
    """The CPUs this benchmark (and the server it starts) may run on."""
    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=available_cpus())
    parser.add_argument("--busy", type=int, default=1, help="competing busy processes")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = model_path(Path(tmp))
        raw = load_raw(path, args.threads)
        raw_one = load_raw(path, 1)
        server = start_server(Path(tmp) / "data", config={"preload": [MODEL]})
        results: dict[str, list[Run]] = {
            k: [] for k in ("quiet_raw", "quiet_oasis", "busy_raw", "busy_oasis", "busy_raw_1")
        }
        try:
            with client_for(server.base_url) as client:
                sides: dict[str, Callable[[], Run]] = {
                    "raw": lambda: raw_run(raw, args.tokens),
                    "oasis": lambda: oasis_run(client, args.tokens, raw.ban),
                    "raw_1": lambda: raw_run(raw_one, args.tokens),
                }
                raw_run(raw, 8)  # warm every side once
                raw_run(raw_one, 8)
                oasis_run(client, 8, raw.ban)
                for rep in range(args.reps):
                    # Alternate which side goes first, so neither always follows the other.
                    order = ["raw", "oasis"] if rep % 2 == 0 else ["oasis", "raw"]
                    for side in order:
                        results[f"quiet_{side}"].append(sides[side]())
                    with busy_processes(args.busy):
                        for side in [*order, "raw_1"]:
                            results[f"busy_{side}"].append(sides[side]())
                    print(
                        f"rep {rep + 1}: "
                        + ", ".join(f"{k} {v[-1][1]:.1f}" for k, v in results.items())
                        + " tok/s",
                        flush=True,
                    )
        finally:
            server.stop()

    tps = {k: statistics.median(r[1] for r in runs) for k, runs in results.items()}
    summary = {
        "benchmark": "contention",
        "cores": os.cpu_count(),
        "available_cpus": available_cpus(),
        "raw_threads": args.threads,
        "busy_processes": args.busy,
        "tokens": args.tokens,
        "reps": args.reps,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "tokens_seen": {k: sorted({r[2] for r in runs}) for k, runs in results.items()},
        "decode_tok_s": {k: round(v, 2) for k, v in tps.items()},
        "busy_ratio": round(tps["busy_oasis"] / tps["busy_raw"], 3),
        "busy_ratio_vs_raw_1_thread": round(tps["busy_oasis"] / tps["busy_raw_1"], 3),
        "quiet_ratio": round(tps["quiet_oasis"] / tps["quiet_raw"], 3),
        "targets": {"busy_ratio": ">= 0.9", "quiet_ratio": "as chat_overhead (>= 0.95)"},
    }
    out = ROOT / "benchmarks" / "results" / "contention.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
