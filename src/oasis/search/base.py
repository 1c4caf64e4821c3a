"""The protocol every search engine implements, and what goes in and out of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit


class SearchError(Exception):
    """The engine could not answer (unreachable, refused, a body it cannot read). The tool
    reports it on a failed ``web_search_call``; the turn goes on."""


@dataclass(frozen=True)
class Location:
    """The user's approximate location (``user_location``), to localise results."""

    country: str | None = None  # ISO 3166 alpha-2
    region: str | None = None
    city: str | None = None
    timezone: str | None = None


@dataclass(frozen=True)
class SearchQuery:
    """One search: the words, how many results, and what narrows them."""

    text: str
    max_results: int = 8
    location: Location | None = None
    allowed_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchResult:
    """One hit: the page, its title and the engine's snippet of it."""

    url: str
    title: str
    snippet: str = ""


class SearchEngine(Protocol):
    """A search engine: a query in, results out, best first."""

    name: str

    async def search(self, query: SearchQuery) -> list[SearchResult]:
        """The results for ``query``; raises :class:`SearchError` when the engine fails."""
        ...

    async def close(self) -> None:
        """Release the engine's connections (at shutdown)."""
        ...


def domain_allowed(url: str, domains: tuple[str, ...]) -> bool:
    """Whether ``url``'s host is one of ``domains`` or a subdomain of one (no list: all)."""
    if not domains:
        return True
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    for domain in domains:
        domain = domain.lower().strip().rstrip(".").removeprefix("www.")
        if host == domain or host.endswith("." + domain) or host == "www." + domain:
            return True
    return False
