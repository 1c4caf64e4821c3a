"""What the engines that speak JSON over HTTP share: one client, errors as SearchError."""

from __future__ import annotations

from typing import Any

import httpx

from oasis.search.base import SearchError, SearchResult


class JsonApi:
    """An engine's HTTP API: requests with the engine's timeout, answers read as JSON."""

    def __init__(self, name: str, timeout: float, transport: httpx.AsyncBaseTransport | None):
        self.name = name
        self.client = httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=True, trust_env=False
        )

    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """The JSON body of the answer; any failure is a :class:`SearchError`."""
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise SearchError(f"{self.name} did not answer: {exc or type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise SearchError(f"{self.name} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise SearchError(f"{self.name} answered with something other than JSON") from exc

    async def close(self) -> None:
        await self.client.aclose()


def results_at(body: Any, path: tuple[str, ...], snippet: str) -> list[SearchResult]:
    """The results listed at ``path`` in an engine's JSON answer: objects with ``url``,
    ``title`` and the snippet under the engine's own name for it."""
    for key in path:
        body = body.get(key) if isinstance(body, dict) else None
    if not isinstance(body, list):
        raise SearchError("the search engine's answer has no result list")
    return [
        SearchResult(str(r["url"]), str(r.get("title") or r["url"]), str(r.get(snippet) or ""))
        for r in body
        if isinstance(r, dict) and r.get("url")
    ]
