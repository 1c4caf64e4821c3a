"""Embeddings through oasis against sentence-transformers called directly, in one run.

1. Throughput: 1,000 varied sentences in one ``embeddings.create`` call (the SDK, base64 as
   it sends by default) ÷ ``SentenceTransformer.encode`` on the same sentences in this
   process, same model directory, same torch threads, same batch size. Target: ≥ 0.9.
2. Micro-batching: 64 concurrent one-sentence requests (``AsyncOpenAI``) ÷ the same 64
   requests sent one at a time, both through oasis. Target: ≥ 3×.

The two sides run in turn, round after round, so that load from elsewhere on the machine
falls on both; the best round of each side is compared (the median is reported too).

    .venv/bin/python benchmarks/embeddings.py [--rounds 3] [--threads N] [--wait-ms 2]

Results go to ``benchmarks/results/embeddings.json`` with the machine's core count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from openai import AsyncOpenAI, OpenAI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from harness import served, write_result  # noqa: E402
from oasis.models.assets import resolve_source  # noqa: E402
from oasis.models.catalog import MINILM  # noqa: E402

# Sentences are drawn from these words (re.findall keeps the list readable).
VOCABULARY = (
    "the a river city council morning library plan budget bread children school mural "
    "mayor volunteers street parking traffic study rain fields fences crews trees road sky "
    "water week weekend harbour boat catch season captain seas sunrise tourists pier crew "
    "cod market investors rates growth economy music violin drums horse food engine model "
    "vector search query document answer question quickly slowly carefully new old large "
    "small bright dark quiet busy early late warm cold green blue red yellow"
)
WORDS = re.findall(r"\w+", VOCABULARY)


def sentences(count: int, seed: int = 7) -> list[str]:
    """Varied sentences of 4 to 40 words, the same every run."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = rng.choices(WORDS, k=rng.randint(4, 40))
        out.append(" ".join(words).capitalize() + ".")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--concurrent", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--wait-ms", type=float, default=2.0, help="micro-batch wait")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/embeddings.json")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    data_dir = Path(tempfile.mkdtemp(prefix="oasis-bench-embed-"))
    model_dir = resolve_source(MINILM, data_dir)
    library = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    texts = sentences(args.sentences)
    singles = sentences(args.concurrent, seed=11)

    config = {
        "preload": [MINILM.id],
        "threads": args.threads,
        "embeddings": {"batch_size": args.batch_size, "max_batch_wait_ms": args.wait_ms},
    }
    with served(data_dir / "server", config, timeout=300) as server:
        client = OpenAI(base_url=server.api_url, api_key="sk-bench", max_retries=0, timeout=600)
        aclient = AsyncOpenAI(base_url=server.api_url, api_key="sk-bench", max_retries=0)

        def library_run() -> float:
            start = time.perf_counter()
            vectors = library.encode(texts, batch_size=args.batch_size)
            elapsed = time.perf_counter() - start
            assert vectors.shape == (len(texts), 384)
            return elapsed

        def oasis_run() -> float:
            start = time.perf_counter()
            result = client.embeddings.create(model=MINILM.id, input=texts)
            elapsed = time.perf_counter() - start
            assert len(result.data) == len(texts) and len(result.data[0].embedding) == 384
            return elapsed

        async def one(text: str) -> None:
            result = await aclient.embeddings.create(model=MINILM.id, input=text)
            assert len(result.data[0].embedding) == 384

        async def sequential() -> float:
            start = time.perf_counter()
            for text in singles:
                await one(text)
            return time.perf_counter() - start

        async def concurrent() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(one(text) for text in singles))
            return time.perf_counter() - start

        # Warm both sides (first calls allocate, open connections, load lazily).
        library.encode(texts[:64], batch_size=args.batch_size)
        client.embeddings.create(model=MINILM.id, input=texts[:64])
        loop = asyncio.new_event_loop()
        loop.run_until_complete(concurrent())

        lib_times: list[float] = []
        oasis_times: list[float] = []
        seq_times: list[float] = []
        conc_times: list[float] = []
        for round_no in range(args.rounds):
            lib_times.append(library_run())
            oasis_times.append(oasis_run())
            seq_times.append(loop.run_until_complete(sequential()))
            conc_times.append(loop.run_until_complete(concurrent()))
            print(
                f"round {round_no + 1}: library {lib_times[-1]:.2f}s, oasis {oasis_times[-1]:.2f}s"
                f" | {args.concurrent} one at a time {seq_times[-1]:.2f}s, "
                f"concurrent {conc_times[-1]:.2f}s",
                flush=True,
            )
        loop.run_until_complete(aclient.close())
        loop.close()
        client.close()

    n, c = len(texts), args.concurrent
    results = {
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "threads": args.threads,
        "model": MINILM.id,
        "batch_size": args.batch_size,
        "max_batch_wait_ms": args.wait_ms,
        "rounds": args.rounds,
        "sentences": n,
        "library_s": [round(t, 3) for t in lib_times],
        "oasis_s": [round(t, 3) for t in oasis_times],
        "library_emb_s": round(n / min(lib_times), 1),
        "oasis_emb_s": round(n / min(oasis_times), 1),
        "throughput_ratio": round(min(lib_times) / min(oasis_times), 3),
        "throughput_ratio_median": round(
            statistics.median(lib_times) / statistics.median(oasis_times), 3
        ),
        "concurrent_requests": c,
        "one_at_a_time_s": [round(t, 3) for t in seq_times],
        "concurrent_s": [round(t, 3) for t in conc_times],
        "one_at_a_time_req_s": round(c / min(seq_times), 1),
        "concurrent_req_s": round(c / min(conc_times), 1),
        "batching_speedup": round(min(seq_times) / min(conc_times), 2),
        "batching_speedup_median": round(
            statistics.median(seq_times) / statistics.median(conc_times), 2
        ),
        "targets": {"throughput_ratio": ">= 0.9", "batching_speedup": ">= 3"},
    }
    write_result("embeddings", results, args.out)


if __name__ == "__main__":
    main()
