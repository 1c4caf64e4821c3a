"""Vector stores through oasis against the embeddings library and a brute-force scan, in one run.

1. Ingest: documents attached in one file batch, from the create call until
   ``file_counts.in_progress == 0`` (parse, chunk, embed, store), as chunks/s ÷
   ``SentenceTransformer.encode`` on the very same chunk texts (read back from the
   database) in this process, same model directory and threads. Target: ≥ 0.8.
2. Search: ``vector_stores.search`` latency p50/p95 through the SDK at 1,000 and 10,000
   chunks, hybrid (the default) and vector-only (``ranker: none``), beside a brute-force
   numpy scan of the same stored vectors for the same query vectors; the vector-only top-k
   must equal the brute-force top-k. Target: p50 ≤ 20 ms at 10,000 chunks. Each search
   embeds its query, so the embeddings request for the same query is timed beside it,
   and the search from the query vector on is timed in process (``*_in_process_*``, in
   wall-clock time and in the CPU time of the searching thread, ``*_cpu_*``, which a busy
   machine does not inflate).

The search stores are written straight into the server's database (through the
repository, as ingestion writes them): chunk texts made of sentences, vectors random unit
vectors. Search cost does not depend on what the vectors mean, and embedding 10,000
chunks would take the benchmark tens of minutes on a small machine. Queries are embedded
by the real model (through the server, as every search does).

    .venv/bin/python benchmarks/vector_search.py [--ingest 500] [--sizes 1000 10000]

Results go to ``benchmarks/results/vector_search.json`` with the machine's core count.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from openai import OpenAI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from embeddings import sentences  # noqa: E402
from harness import served, write_result  # noqa: E402
from oasis.models.assets import resolve_source  # noqa: E402
from oasis.models.catalog import MINILM  # noqa: E402

CHUNK_TOKENS = 120  # under MiniLM's 256-token input, so every chunk is embedded whole
CHUNKS_PER_DOCUMENT = 50
TOP_K = 10


def documents(chunks: int, seed: int) -> list[str]:
    """Documents of about ``CHUNKS_PER_DOCUMENT`` chunks each, about ``chunks`` in all."""
    count = max(1, chunks // CHUNKS_PER_DOCUMENT)
    # A sentence is ~25 tokens: five sentences make about one chunk.
    rows = sentences(count * CHUNKS_PER_DOCUMENT * 5, seed=seed)
    size = len(rows) // count
    return [" ".join(rows[i * size : (i + 1) * size]) for i in range(count)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def ingest(client: OpenAI, name: str, texts: list[str]) -> tuple[str, float]:
    """A store holding ``texts``; the seconds from the batch's creation to its end."""
    ids = [
        client.files.create(
            file=(f"{name}-{i}.txt", io.BytesIO(t.encode())), purpose="assistants"
        ).id
        for i, t in enumerate(texts)
    ]
    store = client.vector_stores.create(name=name)
    start = time.perf_counter()
    batch = client.vector_stores.file_batches.create(
        store.id,
        file_ids=ids,
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": CHUNK_TOKENS, "chunk_overlap_tokens": 0},
        },
    )
    while batch.file_counts.in_progress:
        time.sleep(0.05)
        batch = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    elapsed = time.perf_counter() - start
    assert batch.file_counts.completed == len(texts), batch.file_counts
    return store.id, elapsed


async def fill(db: Path, store_id: str, chunks: int, dimensions: int, seed: int) -> None:
    """Give ``store_id`` about ``chunks`` chunks (files of 50), written as ingestion does."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from oasis.retrieval.ranking import to_blob, unit_rows
    from oasis.store.vector_stores import NewChunk, VectorStoreRepository

    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    repo = VectorStoreRepository(engine)
    rng = np.random.default_rng(seed)
    texts = [s[:400] for s in sentences(chunks, seed=seed)]
    try:
        owner = await _owner(engine, store_id)
        for start in range(0, chunks, CHUNKS_PER_DOCUMENT):
            part = texts[start : start + CHUNKS_PER_DOCUMENT]
            vectors = unit_rows(rng.standard_normal((len(part), dimensions)).astype(np.float32))
            file_id = f"file-synthetic-{seed}-{start}"
            await repo.add_file(
                owner,
                store_id,
                file_id,
                filename=f"{file_id}.txt",
                attributes=None,
                chunking={"type": "other"},
                created_at=int(time.time()),
            )
            await repo.complete_file(
                owner,
                store_id,
                file_id,
                [NewChunk(t, 0, to_blob(v)) for t, v in zip(part, vectors, strict=True)],
                0,
            )
    finally:
        await engine.dispose()


async def _owner(engine: object, store_id: str) -> str:
    from sqlalchemy import text

    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return str(
            (
                await conn.execute(
                    text("SELECT owner FROM vector_stores WHERE id = :id"), {"id": store_id}
                )
            ).scalar_one()
        )


async def index_path(
    db: Path, store_id: str, queries: list[str], vectors: np.ndarray, hybrid: bool
) -> tuple[list[float], list[float]]:
    """Seconds per search in process, from the query vector on (the scan of the cached
    vectors, the query's keyword terms and their postings, fusion and the hits): the
    search without the query's embedding, the store's row and HTTP. Wall-clock seconds,
    and the CPU seconds of this thread (where the search runs): on a busy machine the
    first counts the waits for a core, the second only the work."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from oasis.retrieval.ranking import Ranking
    from oasis.services.vector_search import VectorSearch
    from oasis.store.vector_stores import VectorStoreRepository

    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    repo = VectorStoreRepository(engine)
    search = VectorSearch(repo, None, None)  # type: ignore[arg-type]  # never embeds here
    generation = await repo.generation(store_id)
    assert generation is not None
    await search.index(store_id, generation)  # loaded once, as a warm server holds it
    times: list[float] = []
    cpu: list[float] = []
    try:
        for query, vector in zip(queries, vectors, strict=True):
            start, start_cpu = time.perf_counter(), time.thread_time()
            found = await search.search_vectors(
                store_id,
                generation,
                [query],
                vector[None, :],
                filters=None,
                limit=TOP_K,
                ranking=Ranking(hybrid=hybrid),
            )
            times.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
            assert len(found) == TOP_K
    finally:
        await engine.dispose()
    return times, cpu


def stored(db: Path, store_id: str) -> tuple[list[str], list[str], np.ndarray]:
    """The store's chunks as the database has them: texts, file ids, vectors."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT text, file_id, embedding FROM vector_store_chunks "
            "WHERE vector_store_id = ? ORDER BY pk",
            (store_id,),
        ).fetchall()
    vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), -1)
    return [r[0] for r in rows], [r[1] for r in rows], vectors


def search_side(
    client: OpenAI,
    store_id: str,
    queries: list[str],
    query_vectors: np.ndarray,
    chunks: tuple[list[str], list[str], np.ndarray],
) -> dict[str, object]:
    texts, files, vectors = chunks
    hybrid: list[float] = []
    dense: list[float] = []
    brute: list[float] = []
    embedding: list[float] = []
    equal = 0
    for query, vector in zip(queries, query_vectors, strict=True):
        start = time.perf_counter()
        client.embeddings.create(model=MINILM.id, input=query, encoding_format="float")
        embedding.append(time.perf_counter() - start)
        start = time.perf_counter()
        client.vector_stores.search(store_id, query=query, max_num_results=TOP_K)
        hybrid.append(time.perf_counter() - start)
        start = time.perf_counter()
        page = client.vector_stores.search(
            store_id, query=query, max_num_results=TOP_K, ranking_options={"ranker": "none"}
        )
        dense.append(time.perf_counter() - start)
        start = time.perf_counter()
        scores = vectors @ vector
        best = np.argpartition(-scores, TOP_K - 1)[:TOP_K]
        best = best[np.argsort(-scores[best])]
        brute.append(time.perf_counter() - start)
        expected = [(files[i], texts[i]) for i in best]
        got = [(r.file_id, r.content[0].text) for r in page.data]
        equal += got == expected
    ms = 1000.0
    return {
        "chunks": len(texts),
        "queries": len(queries),
        "hybrid_p50_ms": round(percentile(hybrid, 50) * ms, 2),
        "hybrid_p95_ms": round(percentile(hybrid, 95) * ms, 2),
        "vector_only_p50_ms": round(percentile(dense, 50) * ms, 2),
        "vector_only_p95_ms": round(percentile(dense, 95) * ms, 2),
        "query_embedding_request_p50_ms": round(percentile(embedding, 50) * ms, 2),
        "brute_force_scan_p50_ms": round(percentile(brute, 50) * ms, 3),
        "brute_force_scan_p95_ms": round(percentile(brute, 95) * ms, 3),
        "top_k_equal_to_brute_force": f"{equal}/{len(queries)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ingest", type=int, default=500, help="chunks ingested for real")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vector_search.json")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="oasis-bench-vectors-"))
    library = SentenceTransformer(
        str(resolve_source(MINILM, data_dir)), device="cpu", local_files_only=True
    )
    queries = [s[:80] for s in sentences(args.queries, seed=99)]
    config = {"preload": [MINILM.id], "threads": args.threads}
    results: dict[str, object] = {}
    with served(data_dir / "server", config, timeout=300) as server:
        client = OpenAI(base_url=server.api_url, api_key="sk-bench", max_retries=0, timeout=600)
        db = data_dir / "server" / "oasis.db"
        client.embeddings.create(model=MINILM.id, input="warm up")
        store_id, seconds = ingest(client, "ingest", documents(args.ingest, seed=5))
        texts, _, _ = stored(db, store_id)
        library.encode(texts[:32], batch_size=32)  # warm
        start = time.perf_counter()
        library.encode(texts, batch_size=32)
        raw = time.perf_counter() - start
        results["ingest"] = {
            "chunks": len(texts),
            "oasis_s": round(seconds, 2),
            "library_s": round(raw, 2),
            "oasis_chunks_s": round(len(texts) / seconds, 1),
            "library_chunks_s": round(len(texts) / raw, 1),
            "ratio": round(raw / seconds, 3),
        }
        print("ingest", results["ingest"], flush=True)
        query_vectors = np.array(
            [d.embedding for d in client.embeddings.create(model=MINILM.id, input=queries).data],
            dtype=np.float32,
        )
        query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
        for size in args.sizes:
            store_id = client.vector_stores.create(name=f"search-{size}").id
            asyncio.run(fill(db, store_id, size, query_vectors.shape[1], seed=size))
            chunks = stored(db, store_id)
            search_side(client, store_id, queries[:5], query_vectors[:5], chunks)  # warm
            side = search_side(client, store_id, queries, query_vectors, chunks)
            for name, hybrid in (("hybrid", True), ("vector_only", False)):
                times, cpu = asyncio.run(index_path(db, store_id, queries, query_vectors, hybrid))
                side[f"{name}_in_process_p50_ms"] = round(percentile(times, 50) * 1000, 2)
                side[f"{name}_in_process_p95_ms"] = round(percentile(times, 95) * 1000, 2)
                side[f"{name}_in_process_cpu_p50_ms"] = round(percentile(cpu, 50) * 1000, 2)
            results[f"search_{size}"] = side
            print(size, results[f"search_{size}"], flush=True)
        client.close()
    summary = {
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "threads": args.threads,
        "model": MINILM.id,
        "chunk_tokens": CHUNK_TOKENS,
        "top_k": TOP_K,
        "search_vectors": "random unit vectors written to the database (see the docstring)",
        **results,
        "targets": {"ingest ratio": ">= 0.8", "search p50 at 10,000 chunks": "<= 20 ms"},
    }
    write_result("vector_search", summary, args.out)


if __name__ == "__main__":
    main()
