"""What the agent loop adds to a hosted tool call, measured side by side in one run.

MCP (:func:`mcp_overhead`): the test MCP server (``tests/mcp_server.py``) on loopback;
oasis streams a turn that forces one call of its ``add`` tool, and the client notes when
the ``mcp_call`` item's ``output_item.added`` and ``output_item.done`` events arrive: the
span between them is the call as the loop makes it (a session opened through the one
outbound client, the handshake, the call, the item's events), with no model time in it.
Beside it, the same call made directly with the ``mcp`` client: a fresh session each time
(what oasis does per call) and, for reference, a call on an already open session. The
listing (``mcp_list_tools``) is measured the same way. Repetitions are interleaved.

    .venv/bin/python benchmarks/hosted_tools.py --reps 15

Target: the median ``mcp_call`` span exceeds the direct fresh-session call by <= 10 ms.
Writes benchmarks/results/hosted_tools.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.mcp_server import running  # noqa: E402

from harness import served, write_result  # noqa: E402

MODEL = "smollm2-135m-instruct"


def _spans(client: httpx.Client, url: str) -> tuple[float, float, dict[str, Any]]:
    """(listing span, call span) in seconds of one streamed turn, and the call's arguments."""
    body = {
        "model": MODEL,
        "input": "Use the tool to add 2 and 3.",
        "temperature": 0,
        "max_output_tokens": 64,
        "max_tool_calls": 1,
        "stream": True,
        "tools": [
            {"type": "mcp", "server_label": "bench", "server_url": url, "require_approval": "never"}
        ],
        "tool_choice": {"type": "mcp", "server_label": "bench", "name": "add"},
    }
    added: dict[str, float] = {}
    spans: dict[str, float] = {}
    arguments: dict[str, Any] = {}
    with client.stream("POST", "/responses", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            now = time.perf_counter()
            event = json.loads(line[6:])
            item = event.get("item") or {}
            if event["type"] == "response.output_item.added":
                added[item["type"]] = now
            elif event["type"] == "response.output_item.done" and item["type"] in added:
                spans[item["type"]] = now - added[item["type"]]
                if item["type"] == "mcp_call":
                    if item.get("status") != "completed":
                        raise RuntimeError(f"the call failed: {item}")
                    arguments = json.loads(item["arguments"])
    return spans["mcp_list_tools"], spans["mcp_call"], arguments


async def _direct(url: str, arguments: dict[str, Any], reps: int) -> dict[str, list[float]]:
    """The same listing and call through the ``mcp`` client: fresh sessions (over one
    pooled HTTP client, as oasis has), and one open session."""
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    out: dict[str, list[float]] = {"list_fresh": [], "call_fresh": [], "call_open": []}
    async with httpx2.AsyncClient() as pool:
        await pool.get(url.rsplit("/", 1)[0])  # the connection is open, as in oasis
        for _ in range(reps):
            for key in ("list_fresh", "call_fresh"):
                started = time.perf_counter()
                async with (
                    streamable_http_client(url, http_client=pool) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    if key == "list_fresh":
                        await session.list_tools()
                    else:
                        await session.call_tool("add", arguments)
                out[key].append(time.perf_counter() - started)
    async with (
        streamable_http_client(url) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        for _ in range(reps):
            started = time.perf_counter()
            await session.call_tool("add", arguments)
            out["call_open"].append(time.perf_counter() - started)
    return out


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def mcp_overhead(reps: int) -> dict[str, Any]:
    """The MCP half of the benchmark (see the module docstring)."""
    with (
        running() as urls,
        tempfile.TemporaryDirectory() as tmp,
        served(Path(tmp), {"preload": [MODEL], "allow_private_urls": True}) as server,
        httpx.Client(base_url=server.api_url, timeout=300) as client,
    ):
        url = urls["http"]
        _spans(client, url)  # warm-up: the model's first prompt, imports
        lists: list[float] = []
        calls: list[float] = []
        direct: dict[str, list[float]] = {"list_fresh": [], "call_fresh": [], "call_open": []}
        for _ in range(reps):
            listing, call, arguments = _spans(client, url)
            lists.append(listing)
            calls.append(call)
            for key, values in asyncio.run(_direct(url, arguments, 1)).items():
                direct[key] += values
    return {
        "reps": reps,
        "oasis_mcp_call_ms": _ms(calls),
        "direct_call_fresh_session_ms": _ms(direct["call_fresh"]),
        "direct_call_open_session_ms": _ms(direct["call_open"]),
        "mcp_call_overhead_ms": round(_ms(calls) - _ms(direct["call_fresh"]), 2),
        "oasis_mcp_list_tools_ms": _ms(lists),
        "direct_list_fresh_session_ms": _ms(direct["list_fresh"]),
        "mcp_list_overhead_ms": round(_ms(lists) - _ms(direct["list_fresh"]), 2),
        "target_overhead_ms": 10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    write_result("hosted_tools", {"mcp": mcp_overhead(args.reps)})


if __name__ == "__main__":
    main()
