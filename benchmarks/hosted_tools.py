"""What the Responses agent loop adds to a hosted tool call, measured side by side.

Web search (``web_search_overhead``): the search engine is a SearXNG-compatible service
on loopback (tests/web_world.py, answering after ``--engine-ms``), the same one oasis is
configured with. Interleaved repetitions of

* the engine called directly (one ``GET /search?format=json``): its own response time;
* a streamed Responses turn with a forced ``web_search`` call, timed from the search
  item's ``response.web_search_call.searching`` event to its ``output_item.done``: the
  engine's time plus what oasis adds (the call, the query, results to items and sources);
* the same turn with the pages opened (medium context: two pages read with trafilatura),
  timed from the search's ``searching`` to the last ``open_page`` item's done, beside the
  engine plus the same two pages fetched directly.

MCP (:func:`mcp_overhead`): the test MCP server (``tests/mcp_server.py``) on loopback;
oasis streams a turn that forces one call of its ``add`` tool, and the client notes when
the ``mcp_call`` item's ``output_item.added`` and ``output_item.done`` events arrive: the
span between them is the call as the loop makes it (on the session oasis keeps open for
that server and headers, through the one outbound client; the call; the item's events),
with no model time in it. Beside it, the same call made directly with the ``mcp`` client on
an open session (what oasis does now), and, for reference, on a fresh session each time
(what oasis did before it kept sessions). The listing (``mcp_list_tools``) is measured the
same way. To see where the rest goes, the same call is also made in this process through
oasis's own session pool (:class:`~oasis.tools.mcp_sessions.SessionPool`: the URL policy
and the bridge from the SDK's ``httpx2`` to oasis's ``httpx`` client, no loop, no server):
the span minus that is the loop, its events and their SSE delivery. Repetitions are
interleaved.

Target: the median ``mcp_call`` span exceeds the direct call on an open session by
<= 10 ms.
Both, in one run (``--only web`` or ``--only mcp`` for one of them):

    .venv/bin/python benchmarks/hosted_tools.py --reps 7

Writes benchmarks/results/hosted_tools.json (``--out`` names another file), with the
machine's load average before and after.
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

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.mcp_server import running  # noqa: E402
from tests.web_world import web_world  # noqa: E402

from harness import served, write_result  # noqa: E402

MODEL = "smollm2-135m-instruct"


def _tool_phase(client: httpx.Client, tool: dict[str, Any]) -> tuple[float, float]:
    """(search seconds, all web_search items' seconds) of one streamed forced turn."""
    body = {
        "model": MODEL,
        "input": "What is the capital of France?",
        "tools": [tool],
        "tool_choice": {"type": "web_search"},
        "max_tool_calls": 1,
        "max_output_tokens": 40,  # the call, then a few tokens of answer
        "temperature": 0,
        "stream": True,
    }
    marks: dict[str, float] = {}
    with client.stream("POST", "/v1/responses", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            now = time.perf_counter()
            kind = event["type"]
            item = event.get("item") or {}
            if kind == "response.web_search_call.searching" and "searching" not in marks:
                marks["searching"] = now
            elif kind == "response.output_item.done" and item.get("type") == "web_search_call":
                if item["action"]["type"] == "search":
                    marks["searched"] = now
                marks["last"] = now
    if "searched" not in marks:
        raise RuntimeError(f"the turn ran no search: {kind} {event}")
    return marks["searched"] - marks["searching"], marks["last"] - marks["searching"]


def web_search_overhead(reps: int, engine_ms: float) -> dict[str, Any]:
    """Medians, in milliseconds, of the web search tool against its engine (see above)."""
    direct: list[float] = []
    searched: list[float] = []
    direct_pages: list[float] = []
    with_pages: list[float] = []
    with web_world() as world, tempfile.TemporaryDirectory() as tmp:
        world.search_delay = engine_ms / 1000
        config = {
            "preload": [MODEL],
            "allow_private_urls": True,
            "web_search": {"engine": "searxng", "url": world.url},
        }
        with (
            served(Path(tmp), config) as server,
            httpx.Client(base_url=server.base_url, timeout=300) as client,
            httpx.Client(timeout=30) as plain,
        ):
            offline = {"type": "web_search", "external_web_access": False}
            live = {"type": "web_search"}
            _tool_phase(client, live)  # warm: the model, trafilatura's import
            for _ in range(reps):
                started = time.perf_counter()
                plain.get(f"{world.url}/search", params={"q": "x", "format": "json"})
                direct.append(time.perf_counter() - started)
                searched.append(_tool_phase(client, offline)[0])
                started = time.perf_counter()
                plain.get(f"{world.url}/search", params={"q": "x", "format": "json"})
                for result in world.results()[:2]:
                    plain.get(result["url"])
                direct_pages.append(time.perf_counter() - started)
                with_pages.append(_tool_phase(client, live)[1])

    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 2)

    return {
        "engine_ms_configured": engine_ms,
        "engine_direct_ms": ms(direct),
        "search_item_ms": ms(searched),
        "search_added_ms": round(ms(searched) - ms(direct), 2),
        "engine_and_pages_direct_ms": ms(direct_pages),
        "search_and_pages_items_ms": ms(with_pages),
        "pages_added_ms": round(ms(with_pages) - ms(direct_pages), 2),
    }


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
    pooled HTTP client, as oasis has), one open session, and oasis's session pool."""
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from oasis.tools.mcp_client import Server
    from oasis.tools.mcp_sessions import SessionPool
    from oasis.tools.outbound import UrlPolicy, create_http_client

    out: dict[str, list[float]] = {
        "list_fresh": [],
        "call_fresh": [],
        "list_open": [],
        "call_open": [],
        "call_pool": [],
    }
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
        await session.list_tools()
        await session.call_tool("add", arguments)  # warm, as oasis's pooled session is
        for _ in range(reps):
            started = time.perf_counter()
            await session.list_tools()
            out["list_open"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await session.call_tool("add", arguments)
            out["call_open"].append(time.perf_counter() - started)
    policy = UrlPolicy(allow_private=True)
    async with create_http_client(None, policy) as http:
        pool = SessionPool(http, policy)
        server = Server(url, {})
        for _ in range(2):  # opens it, then warms it
            await pool.call_tool("bench", server, "server_url", "add", arguments)
        for _ in range(reps):
            started = time.perf_counter()
            await pool.call_tool("bench", server, "server_url", "add", arguments)
            out["call_pool"].append(time.perf_counter() - started)
        await pool.close()
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
        direct: dict[str, list[float]] = {}
        for _ in range(reps):
            listing, call, arguments = _spans(client, url)
            lists.append(listing)
            calls.append(call)
            for key, values in asyncio.run(_direct(url, arguments, 1)).items():
                direct.setdefault(key, []).extend(values)
    return {
        "reps": reps,
        "oasis_mcp_call_ms": _ms(calls),
        "direct_call_open_session_ms": _ms(direct["call_open"]),
        "mcp_call_overhead_ms": round(_ms(calls) - _ms(direct["call_open"]), 2),
        "direct_call_fresh_session_ms": _ms(direct["call_fresh"]),
        "mcp_call_vs_fresh_session_ms": round(_ms(calls) - _ms(direct["call_fresh"]), 2),
        "oasis_pool_call_in_process_ms": _ms(direct["call_pool"]),
        "pool_and_bridge_ms": round(_ms(direct["call_pool"]) - _ms(direct["call_open"]), 2),
        "loop_events_and_sse_ms": round(_ms(calls) - _ms(direct["call_pool"]), 2),
        "oasis_mcp_list_tools_ms": _ms(lists),
        "direct_list_open_session_ms": _ms(direct["list_open"]),
        "mcp_list_overhead_ms": round(_ms(lists) - _ms(direct["list_open"]), 2),
        "direct_list_fresh_session_ms": _ms(direct["list_fresh"]),
        "target_overhead_ms": 10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--engine-ms", type=float, default=50.0)
    parser.add_argument("--only", choices=["web", "mcp"])
    parser.add_argument("--out", type=Path, default=None, help="the results file")
    args = parser.parse_args()
    # The machine is shared: its load, before and after, says how far to trust the figures.
    result: dict[str, Any] = {"load_average_1m_before": round(os.getloadavg()[0], 2)}
    if args.only in (None, "web"):
        result["web_search"] = web_search_overhead(args.reps, args.engine_ms)
    if args.only in (None, "mcp"):
        result["mcp"] = mcp_overhead(args.reps)
    result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    write_result("hosted_tools", result, args.out)


if __name__ == "__main__":
    main()
