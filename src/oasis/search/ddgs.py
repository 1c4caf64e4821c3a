"""``ddgs``, the keyless metasearch library (an optional package; its own HTTP client)."""

from __future__ import annotations

import asyncio
from typing import Any

from oasis.search.base import SearchError, SearchQuery, SearchResult


class DdgsEngine:
    """``DDGS().text(…)`` in a worker thread (the library is synchronous)."""

    name = "ddgs"

    def __init__(self, *, timeout: float) -> None:
        from ddgs import DDGS

        self.timeout = timeout
        self._ddgs: Any = DDGS(timeout=int(timeout))

    async def search(self, query: SearchQuery) -> list[SearchResult]:
        region = "wt-wt"
        if query.location is not None and query.location.country:
            region = f"{query.location.country.lower()}-en"
        try:
            rows = await asyncio.to_thread(
                self._ddgs.text, query.text, region=region, max_results=query.max_results
            )
        except Exception as exc:  # the library raises its own error types, and httpx's
            raise SearchError(f"ddgs failed: {exc}") from exc
        return [
            SearchResult(str(r["href"]), str(r.get("title") or r["href"]), str(r.get("body") or ""))
            for r in rows or []
            if isinstance(r, dict) and r.get("href")
        ]

    async def close(self) -> None:
        return None
