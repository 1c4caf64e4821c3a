"""A chat stream through oasis over a remote engine vs the engine directly, side by side.

The engine is llama-cpp-python's own OpenAI-compatible server on the packaged SmolLM2
model, on loopback; oasis serves it as a remote model (``engine = "openai"``). Both sides
get the same streamed chat request (greedy, end-of-generation tokens banned so every run
makes exactly ``--tokens`` tokens), read by the same client code; repetitions alternate
between the sides so machine noise hits both alike.

    .venv/bin/python benchmarks/remote_engine.py --reps 7 --tokens 128

Prints decode tokens/s of both sides, their ratio (target >= 0.97) and the median
time-to-first-token overhead (target <= 5 ms), from ``--ttft-pairs`` pairs of 2-token
requests (the median of the pairs' differences, with its quartiles); writes
benchmarks/results/remote_engine.json (``--out`` names another file, e.g. one that says
the machine was busy). Requests through
oasis carry a bearer token, as every SDK client's do (oasis runs without keys, so any
token is accepted: the key lookup is on the path, as in production).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.smollm2 import NEVER_END  # noqa: E402
from tests.upstream_engine import start_engine  # noqa: E402

from harness import served, write_result  # noqa: E402
from side_by_side import PROMPT, Run, measure_stream  # noqa: E402

MODEL = "remote-smollm2"


def stream_run(client: httpx.Client, path: str, model: str, tokens: int) -> Run:
    """One streamed chat completion; every chunk with text is one token."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "logit_bias": NEVER_END,
    }
    started = time.perf_counter()
    with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        return measure_stream((line for line in response.iter_lines() if _has_text(line)), started)


def _has_text(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or []
    return bool(choices and (choices[0].get("delta") or {}).get("content"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(pid: int, run: Callable[[], object], count: int) -> float:
    """Milliseconds of ``pid``'s CPU per call of ``run``: unlike wall time, barely moved
    by other work on a busy machine."""
    before = cpu_seconds(pid)
    for _ in range(count):
        run()
    return (cpu_seconds(pid) - before) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--short", type=int, default=50, help="1-token requests for CPU cost")
    parser.add_argument(
        "--ttft-pairs", type=int, default=60, help="2-token requests per side for TTFT"
    )
    # The engine's threads; the default leaves a core to oasis and the client, as an
    # engine on its own machine would.
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--out", type=Path, default=None, help="the results file")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        engine = start_engine(Path(tmp), threads=args.threads)
        config = {
            "preload": [MODEL],
            "models": [{"id": MODEL, "kind": "chat", "url": engine.url}],
        }
        results: dict[str, list[Run]] = {"engine": [], "oasis": []}
        try:
            with (
                served(Path(tmp) / "data", config) as server,
                httpx.Client(base_url=engine.url.removesuffix("/v1"), timeout=600) as direct,
                httpx.Client(
                    base_url=server.base_url,
                    timeout=600,
                    headers={"Authorization": "Bearer sk-benchmark"},
                ) as through,
            ):
                chat = "/v1/chat/completions"
                sides = {
                    "engine": lambda: stream_run(direct, chat, "x", args.tokens),
                    "oasis": lambda: stream_run(through, chat, MODEL, args.tokens),
                }
                stream_run(direct, chat, "x", 8)  # warm both sides once
                stream_run(through, chat, MODEL, 8)
                for rep in range(args.reps):
                    order = ["engine", "oasis"] if rep % 2 == 0 else ["oasis", "engine"]
                    for side in order:
                        results[side].append(sides[side]())
                    print(
                        f"rep {rep + 1}: engine {results['engine'][-1][1]:.1f} tok/s "
                        f"ttft {results['engine'][-1][0] * 1000:.1f} ms, "
                        f"oasis {results['oasis'][-1][1]:.1f} tok/s "
                        f"ttft {results['oasis'][-1][0] * 1000:.1f} ms",
                        flush=True,
                    )
                # Time to first token, in many short pairs (alternating which side goes
                # first): one long run per side says little on a busy machine, where a
                # single stall moves a median of 7 by tens of milliseconds.
                short = {
                    "engine": lambda: stream_run(direct, chat, "x", 2)[0],
                    "oasis": lambda: stream_run(through, chat, MODEL, 2)[0],
                }
                pairs: list[tuple[float, float]] = []
                for rep in range(args.ttft_pairs):
                    order = ["engine", "oasis"] if rep % 2 == 0 else ["oasis", "engine"]
                    ttft = {side: short[side]() for side in order}
                    pairs.append((ttft["engine"], ttft["oasis"]))
                # CPU per 1-token request: what oasis adds to each request, in its own
                # process, against what the engine spends on the whole request.
                cpu = {
                    "engine": cpu_per_request(
                        engine.process.pid, lambda: stream_run(direct, chat, "x", 1), args.short
                    ),
                    "oasis": cpu_per_request(
                        server.process.pid,
                        lambda: stream_run(through, chat, MODEL, 1),
                        args.short,
                    ),
                }
        finally:
            engine.stop()

    engine_tps = statistics.median(r[1] for r in results["engine"])
    oasis_tps = statistics.median(r[1] for r in results["oasis"])
    engine_ttft = statistics.median(r[0] for r in results["engine"])
    oasis_ttft = statistics.median(r[0] for r in results["oasis"])
    gaps = sorted(o - e for e, o in pairs)
    quartiles = statistics.quantiles(gaps, n=4)
    write_result(
        "remote_engine",
        {
            "engine": "llama_cpp.server (llama-cpp-python) on loopback, SmolLM2-135M Q4_1",
            "engine_threads": args.threads,
            "tokens": args.tokens,
            "reps": args.reps,
            "tokens_seen": {k: sorted({r[2] for r in v}) for k, v in results.items()},
            "engine_decode_tok_s": round(engine_tps, 2),
            "oasis_decode_tok_s": round(oasis_tps, 2),
            "decode_ratio": round(oasis_tps / engine_tps, 3),
            "ttft_pairs": args.ttft_pairs,
            "engine_ttft_ms": round(statistics.median(e for e, _ in pairs) * 1000, 2),
            "oasis_ttft_ms": round(statistics.median(o for _, o in pairs) * 1000, 2),
            # The median of each pair's difference, and its quartiles.
            "ttft_overhead_ms": round(statistics.median(gaps) * 1000, 2),
            "ttft_overhead_quartiles_ms": [round(q * 1000, 2) for q in quartiles[::2]],
            "decode_runs_ttft_ms": {
                "engine": round(engine_ttft * 1000, 2),
                "oasis": round(oasis_ttft * 1000, 2),
            },
            "one_token_requests": args.short,
            "engine_cpu_ms_per_request": round(cpu["engine"], 2),
            "oasis_cpu_ms_per_request": round(cpu["oasis"], 2),
            "load_average_1m_before": round(load_before, 1),
            "load_average_1m": round(os.getloadavg()[0], 1),
            "targets": {"decode_ratio": ">= 0.97", "ttft_overhead_ms": "<= 5"},
        },
        args.out,
    )


if __name__ == "__main__":
    main()
