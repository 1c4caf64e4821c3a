"""Chat streaming through oasis vs raw llama-cpp-python, side by side in one run.

Both sides use the same GGUF file, prompt text, thread count, greedy sampling and token
count (end-of-generation tokens are banned on both sides so every run produces exactly
``--tokens`` tokens). Repetitions alternate between the two sides so that machine noise
hits both alike.

    .venv/bin/python benchmarks/chat_overhead.py --reps 5 --tokens 128

Prints decode tokens/s for both sides, their ratio (target >= 0.95) and the median
time-to-first-token overhead (target <= 15 ms); writes benchmarks/results/chat_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import start_server  # noqa: E402

from side_by_side import (  # noqa: E402
    MODEL,
    client_for,
    load_raw,
    model_path,
    oasis_run,
    raw_run,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        raw = load_raw(model_path(Path(tmp)), args.threads)
        server = start_server(
            Path(tmp) / "data",
            config={"preload": [MODEL], "threads": args.threads},
        )
        results: dict[str, list[tuple[float, float, int]]] = {"raw": [], "oasis": []}
        try:
            with client_for(server.base_url) as client:
                raw_run(raw, 8)  # warm both sides once
                oasis_run(client, 8, raw.ban)
                for rep in range(args.reps):
                    results["raw"].append(raw_run(raw, args.tokens))
                    results["oasis"].append(oasis_run(client, args.tokens, raw.ban))
                    print(
                        f"rep {rep + 1}: raw {results['raw'][-1][1]:.1f} tok/s, "
                        f"oasis {results['oasis'][-1][1]:.1f} tok/s",
                        flush=True,
                    )
        finally:
            server.stop()

    raw_tps = statistics.median(r[1] for r in results["raw"])
    oasis_tps = statistics.median(r[1] for r in results["oasis"])
    raw_ttft = statistics.median(r[0] for r in results["raw"])
    oasis_ttft = statistics.median(r[0] for r in results["oasis"])
    counts = {side: {r[2] for r in runs} for side, runs in results.items()}
    summary = {
        "benchmark": "chat_overhead",
        "cores": os.cpu_count(),
        "threads": args.threads,
        "tokens": args.tokens,
        "reps": args.reps,
        "tokens_seen": {k: sorted(v) for k, v in counts.items()},
        "raw_decode_tok_s": round(raw_tps, 2),
        "oasis_decode_tok_s": round(oasis_tps, 2),
        "decode_ratio": round(oasis_tps / raw_tps, 3),
        "raw_ttft_ms": round(raw_ttft * 1000, 2),
        "oasis_ttft_ms": round(oasis_ttft * 1000, 2),
        "ttft_overhead_ms": round((oasis_ttft - raw_ttft) * 1000, 2),
        "targets": {"decode_ratio": ">= 0.95", "ttft_overhead_ms": "<= 15"},
    }
    out = ROOT / "benchmarks" / "results" / "chat_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
