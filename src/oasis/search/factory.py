"""The engine the operator configured (``[web_search]``), or None."""

from __future__ import annotations

import httpx

from oasis.config import WebSearchSettings
from oasis.search.base import SearchEngine


def create_engine(
    settings: WebSearchSettings, transport: httpx.AsyncBaseTransport | None = None
) -> SearchEngine | None:
    """The configured engine (the settings were checked to have what it needs)."""
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    if settings.engine == "searxng":
        from oasis.search.searxng import SearxngEngine

        assert settings.url is not None
        return SearxngEngine(settings.url, timeout=settings.timeout, transport=transport)
    if settings.engine == "brave":
        from oasis.search.brave import BraveEngine

        return BraveEngine(key, timeout=settings.timeout, url=settings.url, transport=transport)
    if settings.engine == "tavily":
        from oasis.search.tavily import TavilyEngine

        return TavilyEngine(key, timeout=settings.timeout, url=settings.url, transport=transport)
    if settings.engine == "ddgs":
        from oasis.search.ddgs import DdgsEngine

        return DdgsEngine(timeout=settings.timeout)
    return None
