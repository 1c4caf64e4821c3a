"""Many clients at once: aggregate decode tokens/s and time to first token at 1, 2, 4 and 8
concurrent streams, through oasis (continuous batching), llama-cpp-python's own server
(``llama_cpp.server``, one request at a time) and llama.cpp's native slot engine
in-process (``xllamacpp``, ``n_parallel`` slots), all in one run.

Every side serves the same GGUF file (SmolLM2) with the same threads, over HTTP, to the
same streamed chat requests: greedy, end-of-generation tokens banned so each stream yields
exactly ``--tokens`` tokens, each stream with a prompt of its own (so no side serves one
from another's cache). The sides take turns at each concurrency level so that machine
noise hits them alike.

    .venv/bin/python benchmarks/concurrency.py --streams 1,2,4,8 --tokens 64 --reps 3

Writes benchmarks/results/concurrency.json: per side and level the median aggregate
tokens/s (all tokens of all streams / wall time from the first request to the last token)
and p50/p95 time to first token, plus the ratios the targets are stated in.
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import free_port  # noqa: E402

from harness import served, write_result  # noqa: E402
from side_by_side import MODEL, PROMPT, load_raw, model_path  # noqa: E402

# (time to first token, tokens) of one stream; a level's run adds its wall time.
Stream = tuple[float, int]


def stream_once(
    base_url: str, model: str, index: int, tokens: int, ban: dict[int, float]
) -> Stream:
    """One streamed chat turn; counts the chunks with content (one per token on every side)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"({index}) {PROMPT}"}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "logit_bias": {str(k): v for k, v in ban.items()},
    }
    started = time.perf_counter()
    first = 0.0
    count = 0
    with httpx.stream(
        "POST",
        f"{base_url}/v1/chat/completions",
        json=body,
        timeout=1800,
        headers={"Authorization": "Bearer bench"},
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            # Parsed, not matched as text: the servers space their JSON differently.
            choices = json.loads(line[len("data: ") :]).get("choices") or [{}]
            if (choices[0].get("delta") or {}).get("content"):
                if count == 0:
                    first = time.perf_counter() - started
                count += 1
    return first, count


def level(
    base_url: str, model: str, streams: int, tokens: int, ban: dict[int, float]
) -> dict[str, Any]:
    """``streams`` concurrent streams: aggregate tokens/s and every stream's TTFT."""
    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        runs = list(
            pool.map(lambda i: stream_once(base_url, model, i, tokens, ban), range(streams))
        )
    wall = time.perf_counter() - started
    produced = sum(count for _, count in runs)
    return {"tok_s": produced / wall, "ttft": [first for first, _ in runs], "tokens": produced}


@contextmanager
def llama_cpp_server(path: Path, threads: int, n_ctx: int) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free port (it serves one request at a time)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--n_threads",
         str(threads), "--n_ctx", str(n_ctx), "--port", str(port), "--host", "127.0.0.1",
         "--verbose", "false",
         # Its default drops a running stream when the next request comes; queue instead.
         "--interrupt_requests", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/v1/models", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("llama_cpp.server did not start")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def native_slots(path: Path, threads: int, parallel: int, n_ctx: int) -> Iterator[str | None]:
    """llama.cpp's own server loop in this process (xllamacpp), ``parallel`` slots, or
    None when xllamacpp is not installed."""
    try:
        import xllamacpp
    except ImportError:
        yield None
        return
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_parallel = parallel
    params.n_ctx = n_ctx * parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    server = xllamacpp.Server(params)
    try:
        yield str(server.listening_address)
    finally:
        del server


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,2,4,8")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--n-ctx", type=int, default=2048, help="context per sequence")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    levels = [int(s) for s in args.streams.split(",")]
    parallel = max(levels)

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        path = model_path(Path(tmp))
        ban = load_raw(path, 1).ban  # the end-of-generation tokens, as chat_overhead bans them
        config = {
            "preload": [MODEL],
            "threads": args.threads,
            "parallel": parallel,
            "context_length": args.n_ctx,
        }
        oasis = stack.enter_context(served(Path(tmp) / "data", config))
        sides: dict[str, tuple[str, str]] = {"oasis": (oasis.base_url, MODEL)}
        raw = stack.enter_context(llama_cpp_server(path, args.threads, args.n_ctx))
        sides["llama_cpp_server"] = (raw, str(path))
        native = stack.enter_context(native_slots(path, args.threads, parallel, args.n_ctx))
        if native is not None:
            sides["xllamacpp_slots"] = (native, "smollm2")
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {
            s: {n: [] for n in levels} for s in sides
        }
        for base, model in sides.values():
            level(base, model, 1, 8, ban)  # warm every side once
        for n in levels:
            for rep in range(args.reps):
                for side, (base, model) in sides.items():
                    result = level(base, model, n, args.tokens, ban)
                    runs[side][n].append(result)
                    print(
                        f"{n} streams, rep {rep + 1}: {side} {result['tok_s']:.1f} tok/s",
                        flush=True,
                    )

    table: dict[str, dict[str, Any]] = {}
    for side, by_level in runs.items():
        table[side] = {}
        for n, results in by_level.items():
            ttfts = [t for r in results for t in r["ttft"]]
            table[side][str(n)] = {
                "aggregate_tok_s": round(statistics.median(r["tok_s"] for r in results), 2),
                "ttft_p50_ms": round(percentile(ttfts, 0.5) * 1000, 1),
                "ttft_p95_ms": round(percentile(ttfts, 0.95) * 1000, 1),
                "tokens_per_run": sorted({r["tokens"] for r in results}),
            }
    top = str(parallel)

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    agg: Callable[[str, str], float] = lambda side, n: table[side][n]["aggregate_tok_s"]  # noqa: E731
    ratios: dict[str, Any] = {
        f"oasis_{top}_vs_1": ratio(agg("oasis", top), agg("oasis", "1")),
        f"oasis_vs_llama_cpp_server_at_{top}": ratio(
            agg("oasis", top), agg("llama_cpp_server", top)
        ),
    }
    if "xllamacpp_slots" in table:
        ratios[f"oasis_vs_native_at_{top}"] = ratio(agg("oasis", top), agg("xllamacpp_slots", top))
        ratios[f"native_{top}_vs_1"] = ratio(
            agg("xllamacpp_slots", top), agg("xllamacpp_slots", "1")
        )
    summary = {
        "threads": args.threads,
        "tokens_per_stream": args.tokens,
        "reps": args.reps,
        "context_per_sequence": args.n_ctx,
        "native_engine": "xllamacpp" if "xllamacpp_slots" in table else "not installed",
        "table": table,
        "ratios": ratios,
        "targets": {
            f"oasis_{top}_vs_1": ">= 3 (or the native engine's own scaling on this machine)",
            f"oasis_vs_native_at_{top}": ">= 0.9",
        },
    }
    write_result("concurrency", summary, args.out)


if __name__ == "__main__":
    main()
