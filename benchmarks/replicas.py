"""Aggregate requests/s of stored Responses turns with 1 and 2 replicas on one PostgreSQL.

A throwaway PostgreSQL cluster is started (as the tests do, :mod:`tests.postgres`); for
each replica count, a fresh database and that many ``oasis serve`` processes on it, then
``--clients`` concurrent clients for ``--seconds`` seconds, spread over the replicas
round-robin, each sending ``store: true`` Responses turns with a tiny
``max_output_tokens``, chained ``--chain`` deep (``previous_response_id``, so every turn
also reads its context back from the database) before starting a new chain.

The engine: with ``--engine-url`` every replica serves the model through that one
OpenAI-compatible server (``engine = "openai"``), as a deployment does; without it each
replica loads the packaged model in-process, so two replicas also have two engines on the
same cores (each gets its share of the threads), and the figure says what the API and
database layers allow on this machine.

    .venv/bin/python benchmarks/replicas.py --seconds 20 --clients 8

Writes benchmarks/results/replicas.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.postgres import Cluster, start_cluster  # noqa: E402
from tests.server import Server, start_server  # noqa: E402

from harness import write_result  # noqa: E402

MODEL = "smollm2-135m-instruct"
KEY = "sk-bench"


def _config(engine_url: str | None, upstream: str) -> dict[str, Any]:
    if engine_url is None:
        return {"preload": [MODEL]}
    remote = {
        "id": "remote",
        "kind": "chat",
        "engine": "openai",
        "url": engine_url,
        "upstream_model": upstream,
    }
    return {"preload": ["remote"], "models": [remote]}


def _client_loop(
    server: Server,
    model: str,
    tokens: int,
    chain: int,
    stop_at: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    previous: str | None = None
    depth = 0
    with httpx.Client(
        base_url=server.api_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300
    ) as api:
        while time.monotonic() < stop_at:
            body: dict[str, Any] = {
                "model": model,
                "input": "Say one word.",
                "temperature": 0,
                "max_output_tokens": tokens,
                "store": True,
            }
            if previous is not None:
                body["previous_response_id"] = previous
            started = time.perf_counter()
            answer = api.post("/responses", json=body)
            if answer.status_code != 200:
                errors.append(f"{answer.status_code}: {answer.text[:200]}")
                previous, depth = None, 0
                continue
            latencies.append(time.perf_counter() - started)
            depth += 1
            previous = answer.json()["id"] if depth < chain else None
            depth %= chain


def run(cluster: Cluster, replicas: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    url = cluster.database()
    model = MODEL if args.engine_url is None else "remote"
    servers: list[Server] = []
    env = {"OASIS_API_KEYS": KEY, "OASIS_OWNER_SECRET": "bench-owner-secret-x"}
    if args.engine_url is None:
        # In-process engines share the cores: oversubscribed llama.cpp threads spin.
        env["OASIS_THREADS"] = str(max(1, (os.cpu_count() or 1) // replicas))
    try:
        for i in range(replicas):
            servers.append(
                start_server(
                    work / f"n{replicas}-r{i}",
                    config=_config(args.engine_url, args.upstream_model),
                    env=env,
                    args=["--database-url", url],
                    timeout=300,
                )
            )
        # Warm every replica (and its engine) before timing.
        warm: list[float] = []
        _client_loop(servers[0], model, args.tokens, 1, time.monotonic() + 1, warm, [])
        for server in servers[1:]:
            _client_loop(server, model, args.tokens, 1, time.monotonic() + 1, warm, [])
        latencies: list[float] = []
        errors: list[str] = []
        stop_at = time.monotonic() + args.seconds
        threads = [
            threading.Thread(
                target=_client_loop,
                args=(
                    servers[i % replicas],
                    model,
                    args.tokens,
                    args.chain,
                    stop_at,
                    latencies,
                    errors,
                ),
            )
            for i in range(args.clients)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        for server in servers:
            server.stop()
    ordered = sorted(latencies)
    return {
        "replicas": replicas,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "latency_p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
        "latency_p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 1) if ordered else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=2, help="max_output_tokens of each turn")
    parser.add_argument("--chain", type=int, default=4, help="turns per previous_response_id chain")
    parser.add_argument("--engine-url", default=None, help="an OpenAI-compatible engine (…/v1)")
    parser.add_argument("--upstream-model", default=MODEL, help="the engine's model name")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cluster = start_cluster()
    try:
        with tempfile.TemporaryDirectory(prefix="oasis-bench-replicas-") as tmp:
            one = run(cluster, 1, args, Path(tmp))
            two = run(cluster, 2, args, Path(tmp))
    finally:
        cluster.stop()
    write_result(
        "replicas",
        {
            "engine": args.engine_url or "in-process llama.cpp in each replica",
            "clients": args.clients,
            "seconds": args.seconds,
            "max_output_tokens": args.tokens,
            "chain": args.chain,
            "one_replica": one,
            "two_replicas": two,
            "two_over_one": round(two["requests_per_s"] / max(one["requests_per_s"], 1e-9), 3),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
