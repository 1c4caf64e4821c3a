"""The Batch API against the same requests sent over HTTP, in one run.

1. Chat: lines/s of an N-line chat batch (create → completed, the output file read back)
   ÷ the same N requests sent concurrently with ``AsyncOpenAI``. Target: ≥ 1.0.
2. Embeddings: lines/s of an M-line embeddings batch ÷ the same M requests sent
   concurrently. Target: ≥ 1.0.
3. Live latency: the p50 of a short chat request while a chat batch runs ÷ the p50 idle
   (batch lines run below interactive requests, so this stays near 1).

Both sides run on one server, in turn. The defaults are the issue's sizes (1,000 chat
lines, 10,000 embeddings lines); on a busy 2-core machine pass smaller ones.

    .venv/bin/python benchmarks/batches.py [--chat-lines 1000] [--embedding-lines 10000]

Results go to ``benchmarks/results/batches.json`` with the machine's core count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI, OpenAI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from embeddings import sentences  # noqa: E402
from harness import served, write_result  # noqa: E402

CHAT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"


def chat_body(i: int, tokens: int) -> dict[str, Any]:
    return {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": f"Write one line about the number {i}."}],
        "max_tokens": tokens,
        "temperature": 0,
        "seed": i,
    }


def embedding_body(text: str) -> dict[str, Any]:
    return {"model": EMBEDDING_MODEL, "input": text, "encoding_format": "float"}


def run_batch(client: OpenAI, url: str, bodies: list[dict[str, Any]]) -> tuple[float, Any]:
    """Seconds from upload to a completed batch whose output is read back; the batch."""
    text = "\n".join(
        json.dumps({"custom_id": f"line-{i}", "method": "POST", "url": url, "body": body})
        for i, body in enumerate(bodies)
    )
    start = time.perf_counter()
    file = client.files.create(file=("input.jsonl", text.encode()), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id,
        endpoint=url,  # type: ignore[arg-type]
        completion_window="24h",
    )
    # Polled once a second, as a client waiting for a batch would: each retrieve counts
    # the batch's lines, and a tenth of a second between them took a few percent of the
    # CPU from decoding on a 2-core machine (the end is seen at most a second late).
    while batch.status not in {"completed", "failed", "cancelled", "expired"}:
        time.sleep(1.0)
        batch = client.batches.retrieve(batch.id)
    if batch.status != "completed" or batch.output_file_id is None:
        raise RuntimeError(f"batch ended {batch.status}: {batch}")
    lines = client.files.content(batch.output_file_id).text.splitlines()
    elapsed = time.perf_counter() - start
    if len(lines) != len(bodies):
        raise RuntimeError(f"{len(lines)} output lines for {len(bodies)} requests")
    return elapsed, batch


async def run_http(base_url: str, url: str, bodies: list[dict[str, Any]], width: int) -> float:
    """Seconds to send ``bodies`` to ``url``, ``width`` at a time."""
    gate = asyncio.Semaphore(width)
    async with AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=600) as sdk:

        async def one(body: dict[str, Any]) -> None:
            async with gate:
                await sdk.post(url.removeprefix("/v1"), body=body, cast_to=object)

        start = time.perf_counter()
        await asyncio.gather(*(one(body) for body in bodies))
        return time.perf_counter() - start


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def live_p50(client: OpenAI, count: int) -> float:
    """The median seconds of ``count`` short chat requests, one after another."""
    times = []
    for i in range(count):
        start = time.perf_counter()
        client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": f"Say hi {i}."}],
            max_tokens=8,
            temperature=0,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chat-lines", type=int, default=1000)
    parser.add_argument("--embedding-lines", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=16, help="max_tokens of a chat line")
    parser.add_argument("--concurrency", type=int, default=64, help="batch_concurrency")
    parser.add_argument("--http-width", type=int, default=8, help="concurrent chat requests")
    parser.add_argument("--embedding-width", type=int, default=64)
    parser.add_argument("--live", type=int, default=10, help="live requests per p50")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/batches.json")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="oasis-bench-batches-"))
    config = {
        "preload": [CHAT_MODEL, EMBEDDING_MODEL],
        "batch_concurrency": args.concurrency,
        "max_queue": 4096,
    }
    chat = [chat_body(i, args.tokens) for i in range(args.chat_lines)]
    texts = sentences(args.embedding_lines)
    embed = [embedding_body(text) for text in texts]
    with served(data_dir, config, timeout=600) as server:
        client = OpenAI(base_url=server.api_url, api_key="x", max_retries=0, timeout=600)
        live_p50(client, 2)  # warm up both paths
        chat_http = asyncio.run(
            run_http(server.api_url, "/v1/chat/completions", chat, args.http_width)
        )
        progress(f"chat over HTTP: {chat_http:.1f} s")
        chat_batch, _ = run_batch(client, "/v1/chat/completions", chat)
        progress(f"chat batch: {chat_batch:.1f} s")
        embed_http = asyncio.run(
            run_http(server.api_url, "/v1/embeddings", embed, args.embedding_width)
        )
        progress(f"embeddings over HTTP: {embed_http:.1f} s")
        embed_batch, _ = run_batch(client, "/v1/embeddings", embed)
        progress(f"embeddings batch: {embed_batch:.1f} s")

        idle = live_p50(client, args.live)
        # A batch long enough to outlast the live requests, cancelled after them.
        background = [chat_body(i, args.tokens) for i in range(max(50, args.live * 5))]
        text = "\n".join(
            json.dumps(
                {"custom_id": f"bg-{i}", "method": "POST", "url": "/v1/chat/completions", "body": b}
            )
            for i, b in enumerate(background)
        )
        file = client.files.create(file=("bg.jsonl", text.encode()), purpose="batch")
        running = client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while client.batches.retrieve(running.id).status != "in_progress":
            time.sleep(0.1)
        busy = live_p50(client, args.live)
        progress(f"live p50: idle {idle * 1000:.0f} ms, during a batch {busy * 1000:.0f} ms")
        still = client.batches.retrieve(running.id)
        client.batches.cancel(running.id)

    write_result(
        "batches",
        {
            "chat_lines": args.chat_lines,
            "chat_tokens": args.tokens,
            "batch_concurrency": args.concurrency,
            "chat_batch_lines_per_s": round(args.chat_lines / chat_batch, 2),
            "chat_http_lines_per_s": round(args.chat_lines / chat_http, 2),
            "chat_ratio": round(chat_http / chat_batch, 3),
            "embedding_lines": args.embedding_lines,
            "embedding_batch_lines_per_s": round(args.embedding_lines / embed_batch, 2),
            "embedding_http_lines_per_s": round(args.embedding_lines / embed_http, 2),
            "embedding_ratio": round(embed_http / embed_batch, 3),
            "live_p50_idle_ms": round(idle * 1000, 1),
            "live_p50_during_batch_ms": round(busy * 1000, 1),
            "live_latency_ratio": round(busy / idle, 3),
            "batch_still_running_after_live": still.status == "in_progress",
            "load_average_before": round(load_before, 2),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
