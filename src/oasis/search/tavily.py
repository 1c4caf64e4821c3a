"""Tavily's search API (a key from tavily.com)."""

from __future__ import annotations

from typing import Any

import httpx

from oasis.search.base import SearchQuery, SearchResult
from oasis.search.http import JsonApi, results_at

ENDPOINT = "https://api.tavily.com/search"


class TavilyEngine:
    """``POST /search`` with the key as a bearer token; domains are filtered by Tavily."""

    name = "tavily"

    def __init__(
        self,
        api_key: str,
        *,
        timeout: float,
        url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = url or ENDPOINT
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.api = JsonApi("Tavily", timeout, transport)

    async def search(self, query: SearchQuery) -> list[SearchResult]:
        payload: dict[str, Any] = {"query": query.text, "max_results": min(query.max_results, 20)}
        if query.allowed_domains:
            payload["include_domains"] = list(query.allowed_domains)
        body = await self.api.request("POST", self.endpoint, json=payload, headers=self.headers)
        return results_at(body, ("results",), "content")

    async def close(self) -> None:
        await self.api.close()
