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

    .venv/bin/python benchmarks/hosted_tools.py --reps 7

Writes benchmarks/results/hosted_tools.json.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--engine-ms", type=float, default=50.0)
    args = parser.parse_args()
    write_result("hosted_tools", {"web_search": web_search_overhead(args.reps, args.engine_ms)})


if __name__ == "__main__":
    main()
