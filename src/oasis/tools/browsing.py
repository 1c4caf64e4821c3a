"""Browsing past a search: opening a page and finding text in it (gpt-oss's ``browser.open``
and ``browser.find``, run by the web search tool).

A page is named the way the model saw it: by its source number in the turn's numbered
sources (``{"id": 2}``), by URL (``{"id": "https://…"}`` or ``{"url": …}``), or not at all
for the page opened last. The turn's :class:`OpenedPages` keeps what was read, so finding
in a page, or opening it again, does not fetch it twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from oasis.core.harmony import browser_tool
from oasis.tools.citations import Sources
from oasis.tools.pages import Page

# How much of an opened page is kept to search in, and what a find shows.
KEPT_CHARS = 100_000
FIND_MATCHES = 10
FIND_CONTEXT = 160  # characters shown either side of a match


@dataclass
class OpenedPages:
    """The pages one turn has read, by URL, and which was opened last."""

    pages: dict[str, Page] = field(default_factory=dict)
    last: str | None = None

    def add(self, url: str, page: Page) -> None:
        """Record ``page``, read for ``url`` (it may have landed elsewhere after redirects)."""
        self.pages[url] = page
        self.pages.setdefault(page.url, page)
        self.last = url


def wants(arguments: dict[str, Any]) -> str:
    """Which browsing action a web search call's arguments ask for: ``find_in_page`` (a
    ``pattern``), ``open_page`` (a page ``id``, ``url`` or ``cursor`` without a query), or
    ``search``."""
    tool = browser_tool(arguments)
    return {"browser.find": "find_in_page", "browser.open": "open_page"}.get(tool, "search")


def page_url(arguments: dict[str, Any], sources: Sources, opened: OpenedPages) -> str | None:
    """The URL of the page the arguments name (``id``, ``url``, ``cursor``), else of the
    page opened last; None when they name a source that does not exist."""
    for key in ("id", "url", "cursor"):
        value = arguments.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
            source = sources.get(int(value))
            return source.url if source else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return opened.last


def page_text(number: int, title: str, url: str, text: str) -> str:
    """An opened page as the model reads it (its source number to cite it by)."""
    return f"[{number}] {title}\nURL: {url}\n{text}".rstrip()


def find(pattern: str, page: Page, number: int) -> str:
    """The passages of ``page`` where ``pattern`` occurs (case-insensitive), as the
    model reads them."""
    title = page.title or page.url
    matches = list(re.finditer(re.escape(pattern), page.text, re.IGNORECASE))
    if not matches:
        return f'No matches for "{pattern}" in [{number}] {title}.'
    shown = []
    for index, match in enumerate(matches[:FIND_MATCHES], 1):
        start = max(0, match.start() - FIND_CONTEXT)
        end = min(len(page.text), match.end() + FIND_CONTEXT)
        passage = " ".join(page.text[start:end].split())
        shown.append(f"[match {index}] …{passage}…")
    more = len(matches) - len(shown)
    head = f'Find results for "{pattern}" in [{number}] {title} ({page.url}):'
    tail = [f"({more} more matches not shown)"] if more > 0 else []
    return "\n".join([head, *shown, *tail])
