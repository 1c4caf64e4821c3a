"""The keyed search engines against stand-ins for their remote APIs (the world outside
the machine, at the HTTP transport): what they send, what they read, how they fail."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from oasis.config import ConfigError, load_settings
from oasis.search import Location, SearchError, SearchQuery, create_engine
from oasis.search.base import domain_allowed
from oasis.search.brave import BraveEngine
from oasis.search.tavily import TavilyEngine


def test_brave_sends_its_key_and_country_and_reads_web_results() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        hits = [{"url": "https://a.example/", "title": "A", "description": "about a"}]
        return httpx.Response(200, json={"web": {"results": hits}})

    engine = BraveEngine("k-1", timeout=5, transport=httpx.MockTransport(answer))
    query = SearchQuery("paris", max_results=3, location=Location(country="fr"))
    results = asyncio.run(engine.search(query))
    assert [(r.url, r.title, r.snippet) for r in results] == [
        ("https://a.example/", "A", "about a")
    ]
    assert seen[0].headers["X-Subscription-Token"] == "k-1"
    assert seen[0].url.params["country"] == "FR"
    assert seen[0].url.params["count"] == "3"


def test_tavily_posts_the_query_with_domains_and_a_bearer_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"results": [{"url": "https://b.example/x"}]})

    engine = TavilyEngine("k-2", timeout=5, transport=httpx.MockTransport(answer))
    results = asyncio.run(engine.search(SearchQuery("q", allowed_domains=("b.example",))))
    assert [(r.url, r.title) for r in results] == [("https://b.example/x", "https://b.example/x")]
    assert seen[0].headers["Authorization"] == "Bearer k-2"
    assert json.loads(seen[0].content)["include_domains"] == ["b.example"]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500),
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json={"nothing": []}),
    ],
)
def test_an_engine_that_answers_badly_is_a_search_error(answer: httpx.Response) -> None:
    engine = BraveEngine("k", timeout=5, transport=httpx.MockTransport(lambda _: answer))
    with pytest.raises(SearchError):
        asyncio.run(engine.search(SearchQuery("q")))


def test_domains_match_themselves_and_their_subdomains() -> None:
    assert domain_allowed("https://news.example.com/a", ("example.com",))
    assert domain_allowed("https://example.com/", ("www.example.com",))
    assert not domain_allowed("https://badexample.com/", ("example.com",))
    assert domain_allowed("https://anything.org/", ())


def test_web_search_settings_come_from_the_environment_and_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OASIS_WEB_SEARCH_ENGINE", "searxng")
    monkeypatch.setenv("OASIS_WEB_SEARCH_URL", "http://127.0.0.1:8888")
    monkeypatch.setenv("OASIS_ALLOW_PRIVATE_URLS", "1")
    settings = load_settings()
    assert settings.allow_private_urls
    engine = create_engine(settings.web_search)
    assert engine is not None and engine.name == "searxng"
    asyncio.run(engine.close())
    monkeypatch.setenv("OASIS_WEB_SEARCH_ENGINE", "brave")
    with pytest.raises(ConfigError, match="api_key"):
        load_settings()
