"""Brave Search's web API (a key from api.search.brave.com)."""

from __future__ import annotations

import httpx

from oasis.search.base import SearchQuery, SearchResult
from oasis.search.http import JsonApi, results_at

ENDPOINT = "https://api.search.brave.com/res/v1/web/search"


class BraveEngine:
    """``GET /res/v1/web/search`` with the key in ``X-Subscription-Token``."""

    name = "brave"

    def __init__(
        self,
        api_key: str,
        *,
        timeout: float,
        url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = url or ENDPOINT
        self.headers = {"X-Subscription-Token": api_key, "Accept": "application/json"}
        self.api = JsonApi("Brave Search", timeout, transport)

    async def search(self, query: SearchQuery) -> list[SearchResult]:
        params: dict[str, str | int] = {"q": query.text, "count": min(query.max_results, 20)}
        if query.location is not None and query.location.country:
            params["country"] = query.location.country.upper()
        body = await self.api.request("GET", self.endpoint, params=params, headers=self.headers)
        return results_at(body, ("web", "results"), "description")

    async def close(self) -> None:
        await self.api.close()
