"""What storing and chaining cost in ``/v1/responses``, measured side by side in one run.

Three ways to run the same streamed turn (same prompt, greedy, same token budget), with
repetitions interleaved so machine noise hits all alike:

* Responses with ``store: true`` (the response and its items are written before the
  terminal event),
* Responses with ``store: false``,
* Chat Completions.

Then a ``previous_response_id`` chain of ``--chain`` turns: time to first token at turn 1
and at the last turn (with the input tokens of each, since a longer prompt takes longer
to evaluate).

End-to-end times on a busy machine are noisy, so the database work itself is also timed
in-process, on the same kind of SQLite file: storing one finished response with its
items (what ``store: true`` adds) and loading a 10-turn chain's context (what
``previous_response_id`` adds before generation starts).

    .venv/bin/python benchmarks/responses_overhead.py --reps 7 --tokens 32 --chain 10

Target: ``store: true`` adds <= 5 ms to the median total time over ``store: false``.
Writes benchmarks/results/responses_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import start_server  # noqa: E402

MODEL = "smollm2-135m-instruct"
PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."


def _sse(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[float, float, Any]:
    """(time to first text delta, total time, last JSON payload) of one streamed request."""
    started = time.perf_counter()
    first = 0.0
    last: Any = None
    with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            payload = json.loads(line[6:])
            text = (
                payload.get("delta")
                if payload.get("type") == "response.output_text.delta"
                else (payload.get("choices") or [{}])[0].get("delta", {}).get("content")
            )
            if text and not first:
                first = time.perf_counter()
            last = payload
    return (first - started) * 1000, (time.perf_counter() - started) * 1000, last


def responses_turn(client: httpx.Client, tokens: int, store: bool) -> tuple[float, float]:
    body = {
        "model": MODEL,
        "input": PROMPT,
        "temperature": 0,
        "max_output_tokens": tokens,
        "store": store,
        "stream": True,
    }
    ttft, total, _ = _sse(client, "/v1/responses", body)
    return ttft, total


def chat_turn(client: httpx.Client, tokens: int) -> tuple[float, float]:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0,
        "max_tokens": tokens,
        "stream": True,
    }
    ttft, total, _ = _sse(client, "/v1/chat/completions", body)
    return ttft, total


def chain(client: httpx.Client, turns: int) -> dict[str, Any]:
    previous: str | None = None
    ttfts: list[float] = []
    input_tokens: list[int] = []
    cached_tokens: list[int] = []
    for turn in range(turns):
        body: dict[str, Any] = {
            "model": MODEL,
            "input": f"Turn {turn + 1}: tell me one more fact about lighthouses.",
            "temperature": 0,
            "max_output_tokens": 16,
            "stream": True,
        }
        if previous:
            body["previous_response_id"] = previous
        ttft, _, final = _sse(client, "/v1/responses", body)
        previous = final["response"]["id"]
        ttfts.append(ttft)
        input_tokens.append(final["response"]["usage"]["input_tokens"])
        cached_tokens.append(final["response"]["usage"]["input_tokens_details"]["cached_tokens"])
    return {
        "ttft_ms": ttfts,
        "input_tokens": input_tokens,
        "cached_tokens": cached_tokens,
    }


def db_costs(reps: int, depth: int) -> dict[str, float]:
    """Median milliseconds of the store's writes and chain reads, measured in-process."""
    import asyncio

    from oasis.owners import OwnerIds
    from oasis.store import Store
    from oasis.store.db import open_database

    def message(i: int, role: str) -> dict[str, Any]:
        kind = "output_text" if role == "assistant" else "input_text"
        part: dict[str, Any] = {"type": kind, "text": "word " * 60}
        if role == "assistant":
            part.update(annotations=[], logprobs=[])
        return {
            "id": f"msg_{role}_{i}",
            "type": "message",
            "role": role,
            "status": "completed",
            "content": [part],
        }

    async def run(tmp: str) -> dict[str, float]:
        owner_ids = OwnerIds(Path(tmp))
        owner_ids.open()
        store = Store(await open_database(None, Path(tmp), owner_ids))
        writes: list[float] = []
        reads: list[float] = []
        previous: list[dict[str, Any]] = []
        try:
            for i in range(reps):
                body = {
                    "id": f"resp_{i}",
                    "object": "response",
                    "created_at": int(time.time()),
                    "status": "completed",
                    "background": False,
                    "output": [message(i, "assistant")],
                }
                inputs = [*previous[-2 * depth :], message(i, "user")]
                started = time.perf_counter()
                await store.responses.insert(
                    "bench", body, inputs=inputs, outputs=body["output"], stream=False
                )
                writes.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                previous = await store.responses.context("bench", body["id"])
                reads.append((time.perf_counter() - started) * 1000)
        finally:
            await store.close()
        return {
            "store_response_ms": round(statistics.median(writes), 3),
            f"load_chain_context_ms_depth_{depth}": round(statistics.median(reads[depth:]), 3),
        }

    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--chain", type=int, default=10)
    parser.add_argument("--chains", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "data", config={"preload": [MODEL]})
        try:
            with httpx.Client(
                base_url=server.base_url, headers={"Authorization": "Bearer x"}, timeout=600
            ) as client:
                responses_turn(client, 4, True)  # warm up every path once
                chat_turn(client, 4)
                runs: dict[str, list[tuple[float, float]]] = {
                    "store_true": [],
                    "store_false": [],
                    "chat": [],
                }
                for rep in range(args.reps):
                    runs["store_true"].append(responses_turn(client, args.tokens, True))
                    runs["store_false"].append(responses_turn(client, args.tokens, False))
                    runs["chat"].append(chat_turn(client, args.tokens))
                    print(
                        f"rep {rep + 1}: "
                        + ", ".join(f"{k} total {v[-1][1]:.1f} ms" for k, v in runs.items()),
                        file=sys.stderr,
                    )
                chains = [chain(client, args.chain) for _ in range(args.chains)]
        finally:
            server.stop()

    def med(name: str, index: int) -> float:
        return round(statistics.median(r[index] for r in runs[name]), 2)

    summary = {
        "benchmark": "responses_overhead",
        "cores": os.cpu_count(),
        "reps": args.reps,
        "tokens": args.tokens,
        "median_ttft_ms": {name: med(name, 0) for name in runs},
        "median_total_ms": {name: med(name, 1) for name in runs},
        "store_overhead_total_ms": round(med("store_true", 1) - med("store_false", 1), 2),
        "store_overhead_ttft_ms": round(med("store_true", 0) - med("store_false", 0), 2),
        "responses_vs_chat_total_ms": round(med("store_false", 1) - med("chat", 1), 2),
        "chain": {
            "turns": args.chain,
            "chains": args.chains,
            "median_ttft_turn_1_ms": round(statistics.median(c["ttft_ms"][0] for c in chains), 2),
            "median_ttft_last_turn_ms": round(
                statistics.median(c["ttft_ms"][-1] for c in chains), 2
            ),
            "input_tokens_turn_1": chains[0]["input_tokens"][0],
            "input_tokens_last_turn": chains[0]["input_tokens"][-1],
            # Prompt tokens the engine reused from its KV cache: only the rest is evaluated.
            "cached_tokens_last_turn": chains[0]["cached_tokens"][-1],
        },
        "db_in_process": db_costs(200, args.chain),
        "target_store_overhead_ms": 5,
    }
    summary["store_target_met"] = summary["store_overhead_total_ms"] <= 5
    out = ROOT / "benchmarks" / "results" / "responses_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
