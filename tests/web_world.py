"""The world outside the machine, played on loopback: a SearXNG-compatible JSON search
service and the web pages its results point at.

``/search?q=…&format=json`` answers SearXNG's JSON shape with results on this server: two
pages under ``localhost`` and one under ``127.0.0.1`` (so a domain filter has something to
drop). ``fail_search`` makes the engine answer 500; ``searches`` records each query.
``World.env`` configures a server to search it; the ``world`` fixture serves it for a module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.loopback import QuietHandler, port_of, serving

PAGES = {
    "/pages/paris": (
        "Paris travel facts",
        "<html><head><title>Paris travel facts</title></head><body><nav>Home | Trips | "
        "Login</nav><article><h1>Paris travel facts</h1><p>Paris is the capital of France "
        "and its largest city. The Eiffel Tower was finished in 1889 for the World's Fair "
        "and is 330 metres tall.</p><p>The river Seine flows through the middle of the "
        "city.</p></article><footer>Copyright nobody</footer></body></html>",
    ),
    "/pages/lyon": (
        "Lyon food guide",
        "<html><head><title>Lyon food guide</title></head><body><article><h1>Lyon food "
        "guide</h1><p>Lyon is known for its bouchons, small restaurants serving local "
        "dishes. It lies where the Rhone meets the Saone.</p></article></body></html>",
    ),
    "/pages/notes": ("Plain notes", "Plain text notes: the Louvre is the most visited museum."),
}


@dataclass
class World:
    port: int
    fail_search: bool = False
    search_delay: float = 0.0
    searches: list[dict[str, list[str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """A server's settings that search this world (private addresses allowed)."""
        return {
            "OASIS_ALLOW_PRIVATE_URLS": "1",
            "OASIS_WEB_SEARCH_ENGINE": "searxng",
            "OASIS_WEB_SEARCH_URL": self.url,
        }

    def results(self) -> list[dict[str, Any]]:
        """The results every search answers, best first."""
        return [
            {
                "url": f"http://localhost:{self.port}/pages/paris",
                "title": "Paris travel facts",
                "content": "Paris is the capital of France.",
            },
            {
                "url": f"http://127.0.0.1:{self.port}/pages/lyon",
                "title": "Lyon food guide",
                "content": "Lyon is known for its bouchons.",
            },
            {
                "url": f"http://localhost:{self.port}/pages/notes",
                "title": "Plain notes",
                "content": "The Louvre is the most visited museum.",
            },
        ]


@contextmanager
def web_world() -> Iterator[World]:
    """Serve the world on a free loopback port for the duration of the block."""
    world = World(0)

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/search":
                world.searches.append(parse_qs(parts.query))
                if world.search_delay:
                    time.sleep(world.search_delay)
                if world.fail_search:
                    self.reply(500, "application/json", b'{"error": "engine down"}')
                    return
                body = {"query": parse_qs(parts.query).get("q", [""])[0]}
                body["results"] = world.results()
                self.reply(200, "application/json", json.dumps(body).encode())
                return
            if parts.path in PAGES:
                kind = "text/plain" if parts.path.endswith("notes") else "text/html"
                self.reply(200, f"{kind}; charset=utf-8", PAGES[parts.path][1].encode())
                return
            self.reply(404, "text/plain", b"not found")

    with serving(Handler) as url:
        world.port = port_of(url)
        yield world


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """The world for one test module (import it by name)."""
    with web_world() as served:
        yield served
