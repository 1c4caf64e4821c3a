"""``web_search`` and ``web_search_preview``: the model searches, oasis runs the query on
the operator's engine, opens the top pages, and hands the model numbered sources; the
answer's ``[n]`` marks become ``url_citation`` annotations (see
:mod:`oasis.tools.citations`).

Each browsing action is one ``web_search_call`` item: the search (``action.search`` with
its query and sources), then one ``open_page`` per page read. A failing engine or page
gives a ``failed`` item and the turn goes on: the model reads what went wrong.
``search_context_size`` sets how many results and how much page text the model gets;
``filters.allowed_domains`` keeps only results on those domains (and their subdomains);
``user_location`` goes to the engine; ``external_web_access: false`` reads the engine's
snippets only, opening no page.

The same function also takes gpt-oss's ``browser.open`` and ``browser.find`` arguments
(the harmony parser calls it for them; see :mod:`oasis.tools.browsing`): an ``open_page``
item gives the model the page's text, a ``find_in_page`` item the passages of the open page
that match its pattern. Every page goes through the URL policy and the domain filter.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from oasis.config import WebSearchSettings
from oasis.core.conversation import FunctionTool
from oasis.errors import InvalidRequestError
from oasis.ids import new_id
from oasis.search import Location, SearchEngine, SearchError, SearchQuery, SearchResult
from oasis.search.base import domain_allowed
from oasis.tools import browsing
from oasis.tools.base import (
    ConfiguredTool,
    HostedCall,
    ItemAdded,
    ItemDone,
    ItemProgress,
    ReplayedCall,
    ToolContext,
    ToolEvent,
    ToolResult,
)
from oasis.tools.outbound import OutboundError
from oasis.tools.pages import Page, read_page
from oasis.tools.registry import register_tool
from oasis.types import Item

FUNCTION = FunctionTool(
    "web_search",
    "Search the web for current information. Returns numbered sources; cite the ones you "
    "use by their number in square brackets, like [1].",
    {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to search for."}},
        "required": ["query"],
    },
)
# The id prefix of the items of the model's own browsing (``browser.open``, ``browser.find``):
# replayed on later turns, where a search's own page reads are not.
BROWSED = "wsb"
NOT_CONFIGURED = (
    "Web search needs a search engine, and this server has none configured. The operator "
    'sets one in the config file: [web_search] engine = "searxng" with url = "<SearXNG base '
    'URL>" (or engine = "brave" / "tavily" with api_key, or engine = "ddgs"), or with '
    "OASIS_WEB_SEARCH_ENGINE, OASIS_WEB_SEARCH_URL and OASIS_WEB_SEARCH_API_KEY."
)


@dataclass(frozen=True)
class Budget:
    """How much of a search the model reads, by ``search_context_size``."""

    results: int  # results listed
    pages: int  # of those, pages opened
    chars: int  # text per source


BUDGETS = {
    "low": Budget(results=3, pages=1, chars=1200),
    "medium": Budget(results=5, pages=2, chars=2500),
    "high": Budget(results=8, pages=4, chars=5000),
}


@dataclass(frozen=True)
class SearchConfig:
    """One configured web search tool."""

    budget: Budget
    location: Location | None
    allowed_domains: tuple[str, ...]
    live: bool


class WebSearchKind:
    """The web search tool kind over one engine (None: not configured, every use a 400)."""

    server_side = True
    item_types = frozenset({"web_search_call"})

    def __init__(
        self, engine: SearchEngine | None = None, settings: WebSearchSettings | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings or WebSearchSettings()

    def configure(self, params: Sequence[tuple[int, Any]]) -> list[ConfiguredTool]:
        out: list[ConfiguredTool] = []
        for index, param in params:
            if self.engine is None:
                raise InvalidRequestError(NOT_CONFIGURED, param=f"tools[{index}]")
            out.append(_configure_one(index, param))
        return out

    async def run(self, call: HostedCall, context: ToolContext) -> AsyncIterator[ToolEvent]:
        config: SearchConfig = call.tool.config
        try:
            arguments = json.loads(call.arguments)
        except ValueError:
            arguments = {}
        if not isinstance(arguments, dict):
            arguments = {}
        action = browsing.wants(arguments)
        if action in ("open_page", "find_in_page"):
            events = self._browse(arguments, config, context, find=action == "find_in_page")
        else:
            events = self._search(str(arguments.get("query") or "").strip(), config, context)
        async for event in events:
            yield event

    async def _search(
        self, query: str, config: SearchConfig, context: ToolContext
    ) -> AsyncIterator[ToolEvent]:
        assert self.engine is not None  # configure refused the tool otherwise
        item = _browsing_item(
            {"type": "search", "query": query, "queries": [query] if query else []}
        )
        async for event in _started(item):
            yield event
        error: str | None = None
        results: list[SearchResult] = []
        if not query:
            error = "the call gave no query"
        else:
            try:
                results = await self.engine.search(
                    SearchQuery(
                        query,
                        max_results=max(self.settings.max_results, config.budget.results),
                        location=config.location,
                        allowed_domains=config.allowed_domains,
                    )
                )
            except SearchError as exc:
                error = str(exc)
        if error is not None:
            yield ItemDone({**item, "status": "failed"})
            yield ToolResult(f"The web search failed: {error}. Answer without it.")
            return
        results = [r for r in results if domain_allowed(r.url, config.allowed_domains)]
        results = results[: config.budget.results]
        sources = [{"type": "url", "url": r.url} for r in results]
        yield ItemProgress("response.web_search_call.completed", item_status="completed")
        yield ItemDone(
            {**item, "status": "completed", "action": {**item["action"], "sources": sources}}
        )
        pages: dict[str, Page] = {}
        if config.live:
            async for event in self._open_pages(
                results[: config.budget.pages], config, context, pages
            ):
                yield event
        yield ToolResult(_digest(query, results, pages, config.budget, context))

    async def _open_pages(
        self,
        results: list[SearchResult],
        config: SearchConfig,
        context: ToolContext,
        pages: dict[str, Page],
    ) -> AsyncIterator[ToolEvent]:
        """One ``open_page`` item per page; the pages load together, items follow in order."""
        loads = [asyncio.ensure_future(self._read(result.url, context)) for result in results]
        try:
            for result, load in zip(results, loads, strict=True):
                item = _browsing_item({"type": "open_page", "url": result.url})
                async for event in _started(item):
                    yield event
                try:
                    pages[result.url] = page = await load
                except OutboundError:
                    yield ItemDone({**item, "status": "failed"})
                    continue
                context.pages.add(result.url, page)
                yield ItemProgress("response.web_search_call.completed", item_status="completed")
                yield ItemDone({**item, "status": "completed"})
        finally:
            for load in loads:
                load.cancel()

    async def _read(self, url: str, context: ToolContext) -> Page:
        """A page's text (what find searches in; the model reads a budget of it)."""
        return await read_page(
            context,
            url,
            max_chars=browsing.KEPT_CHARS,
            max_bytes=self.settings.max_page_bytes,
            timeout=self.settings.page_timeout,
        )

    async def _page(
        self, url: str | None, config: SearchConfig, context: ToolContext
    ) -> Page | str:
        """The page at ``url`` (read now unless the turn has it), or why it cannot be."""
        if url is None:
            return "There is no such page: name a source by its number, or a URL."
        page = context.pages.pages.get(url)
        if page is not None:
            return page
        if not config.live:
            return "This web search reads no pages (external web access is off)."
        if not domain_allowed(url, config.allowed_domains):
            return f"{url} is outside the domains this search may use."
        try:
            return await self._read(url, context)
        except OutboundError as exc:
            return f"Could not open the page: {exc}"

    async def _browse(
        self, arguments: dict[str, Any], config: SearchConfig, context: ToolContext, *, find: bool
    ) -> AsyncIterator[ToolEvent]:
        """One ``open_page`` item (the model reads the page's text) or ``find_in_page`` item
        (it reads the passages that match the pattern)."""
        pattern = str(arguments.get("pattern") or "")
        named = {k: v for k, v in arguments.items() if k != "pattern"}
        url = browsing.page_url(named, context.sources, context.pages)
        action: Item = (
            {"type": "find_in_page", "pattern": pattern, "url": url or ""}
            if find
            else {"type": "open_page", "url": url}
        )
        item = _browsing_item(action, browsed=True)
        async for event in _started(item):
            yield event
        if find and not pattern:
            page: Page | str = "The find gave no pattern."
        else:
            page = await self._page(url, config, context)
        if isinstance(page, str):
            yield ItemDone({**item, "status": "failed"})
            yield ToolResult(page)
            return
        assert url is not None
        context.pages.add(url, page)
        title = page.title or url
        number = context.sources.add(url, title)
        yield ItemProgress("response.web_search_call.completed", item_status="completed")
        yield ItemDone({**item, "status": "completed"})
        if find:
            yield ToolResult(browsing.find(pattern, page, number))
        else:
            # The model asked for this page: it reads more of it than of a search's pages.
            text = page.text[: config.budget.chars * 4]
            yield ToolResult(browsing.page_text(number, title, url, text))

    def replay(self, item: Item) -> ReplayedCall | None:
        """A stored search as the model reads it on a later turn: the call, and the pages
        found (a stored item keeps their addresses, not their text). The pages a search
        read itself are not replayed (the search lists them); a page the model opened, or
        searched in, is (:func:`_replay_browsing`)."""
        action = item.get("action") or {}
        if action.get("type") in {"open_page", "find_in_page"}:
            return _replay_browsing(item) if _browsed(item) else None
        if action.get("type") != "search":
            return None
        query = str(action.get("query") or next(iter(action.get("queries") or []), ""))
        if item.get("status") == "failed":
            output = f'The web search for "{query}" failed.'
        else:
            urls = [str(s.get("url")) for s in action.get("sources") or [] if isinstance(s, dict)]
            found = "\n".join(f"- {url}" for url in urls) if urls else "nothing"
            output = f'The web search for "{query}" found:\n{found}'
        return ReplayedCall(FUNCTION.name, json.dumps({"query": query}), output)


def _browsing_item(action: Item, *, browsed: bool = False) -> Item:
    """A ``web_search_call`` item for ``action``; ``browsed``: the model's own call of
    ``browser.open`` or ``browser.find`` (its id says so, for replay)."""
    return {
        "type": "web_search_call",
        "id": new_id(BROWSED if browsed else "ws"),
        "status": "in_progress",
        "action": action,
    }


def _browsed(item: Item) -> bool:
    return str(item.get("id", "")).startswith(BROWSED + "_")


def _replay_browsing(item: Item) -> ReplayedCall:
    """A page the model opened (or searched in) on an earlier turn, as it reads it now: the
    call, and a short form of what it read (the page's text is not kept past its turn)."""
    action = item["action"]
    url = str(action.get("url") or "")
    failed = item.get("status") == "failed"
    if action["type"] == "open_page":
        output = f"Could not open {url}." if failed else f"Opened {url} (read on an earlier turn)."
        return ReplayedCall(FUNCTION.name, json.dumps({"id": url}), output)
    pattern = str(action.get("pattern") or "")
    output = (
        f'Could not search {url} for "{pattern}".'
        if failed
        else f'Searched {url} for "{pattern}" (read on an earlier turn).'
    )
    return ReplayedCall(FUNCTION.name, json.dumps({"pattern": pattern, "url": url}), output)


async def _started(item: Item) -> AsyncIterator[ToolEvent]:
    """The events that open a ``web_search_call`` item, up to ``searching``."""
    yield ItemAdded(item)
    yield ItemProgress("response.web_search_call.in_progress")
    yield ItemProgress("response.web_search_call.searching", item_status="searching")


def _configure_one(index: int, param: Any) -> ConfiguredTool:
    where = f"tools[{index}]"
    size = param.search_context_size or "medium"
    location = _location(param.user_location, f"{where}.user_location")
    domains = _domains(param.filters, f"{where}.filters")
    live = getattr(param, "external_web_access", None) is not False
    echo: Item = {"type": param.type, "search_context_size": size}
    if param.user_location is not None:
        echo["user_location"] = {"type": "approximate", **param.user_location}
    if param.type.startswith("web_search_preview"):
        if param.user_location is None:
            echo["user_location"] = None
    else:
        echo["filters"] = {"allowed_domains": list(domains)} if param.filters is not None else None
    config = SearchConfig(BUDGETS[size], location, domains, live)
    return ConfiguredTool(param.type, index, echo, FUNCTION, config)


def _location(value: dict[str, Any] | None, param: str) -> Location | None:
    if value is None:
        return None
    if value.get("type", "approximate") != "approximate":
        raise InvalidRequestError(
            "`user_location.type` must be 'approximate'.", param=f"{param}.type"
        )
    fields: dict[str, str | None] = {}
    for key in ("country", "region", "city", "timezone"):
        entry = value.get(key)
        if entry is not None and not isinstance(entry, str):
            raise InvalidRequestError(f"`{key}` must be a string.", param=f"{param}.{key}")
        fields[key] = entry
    return Location(**fields)


def _domains(value: dict[str, Any] | None, param: str) -> tuple[str, ...]:
    domains = (value or {}).get("allowed_domains") or []
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        raise InvalidRequestError(
            "`allowed_domains` must be a list of domain names.", param=f"{param}.allowed_domains"
        )
    return tuple(domains)


def _digest(
    query: str,
    results: list[SearchResult],
    pages: dict[str, Page],
    budget: Budget,
    context: ToolContext,
) -> str:
    """The numbered sources the model reads."""
    if not results:
        return f'The web search for "{query}" found nothing.'
    blocks = [f'Web search results for "{query}". Cite a source by its number, like [1].']
    for result in results:
        page = pages.get(result.url)
        title = (page.title if page else None) or result.title
        number = context.sources.add(result.url, title)
        text = (page.text if page else result.snippet)[: budget.chars]
        blocks.append(f"[{number}] {title}\nURL: {result.url}\n{text}".rstrip())
    return "\n\n".join(blocks)


TOOL = WebSearchKind()  # the built-in default: no engine (the app installs the configured one)
TYPES = (
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
)


def install(engine: SearchEngine | None, settings: WebSearchSettings) -> WebSearchKind:
    """Serve every web search tool type with ``engine`` (a plugin loaded later may still
    replace one)."""
    kind = WebSearchKind(engine, settings)
    for type_ in TYPES:
        register_tool(type_, kind)
    return kind
