"""SearXNG, the common self-hosted metasearch engine, through its JSON API
(``search.formats`` must include ``json`` in the instance's settings)."""

from __future__ import annotations

import httpx

from oasis.search.base import SearchQuery, SearchResult
from oasis.search.http import JsonApi, results_at


class SearxngEngine:
    """``GET {url}/search?q=…&format=json``."""

    name = "searxng"

    def __init__(
        self, url: str, *, timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        base = url.rstrip("/")
        self.endpoint = base if base.endswith("/search") else base + "/search"
        self.api = JsonApi("SearXNG", timeout, transport)

    async def search(self, query: SearchQuery) -> list[SearchResult]:
        params = {"q": query.text, "format": "json"}
        if query.location is not None and query.location.country:
            params["language"] = f"all-{query.location.country.upper()}"
        body = await self.api.request("GET", self.endpoint, params=params)
        return results_at(body, ("results",), "content")

    async def close(self) -> None:
        await self.api.close()
