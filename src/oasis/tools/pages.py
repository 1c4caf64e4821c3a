"""Opening a page a search found: fetched through the URL policy, its main text extracted
with ``trafilatura`` (menus, footers and scripts left out)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from oasis.tools.outbound import OutboundError, fetch

if TYPE_CHECKING:  # base's ToolContext holds the turn's opened pages (browsing imports us)
    from oasis.tools.base import ToolContext

TEXT_TYPES = ("text/plain", "text/markdown")
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class Page:
    """A page's readable text (at most the characters asked for) and its title."""

    url: str
    title: str | None
    text: str


async def read_page(
    context: ToolContext, url: str, *, max_chars: int, max_bytes: int, timeout: float
) -> Page:
    """Fetch ``url`` and extract its text; :class:`OutboundError` when it cannot be read."""
    fetched = await fetch(context.http, context.urls, url, max_bytes=max_bytes, timeout=timeout)
    kind = fetched.content_type.split(";")[0].strip().lower()
    if kind in TEXT_TYPES:
        return Page(fetched.url, None, fetched.text[:max_chars])
    if kind and kind not in HTML_TYPES:
        raise OutboundError(f"{fetched.url}: not a text page ({kind})")
    title, text = await asyncio.to_thread(_extract, fetched.text, fetched.url)
    if not text:
        raise OutboundError(f"{fetched.url}: no readable text")
    return Page(fetched.url, title, text[:max_chars])


def _extract(html: str, url: str) -> tuple[str | None, str]:
    import trafilatura

    document: Any = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    if document is None:
        return None, ""
    if isinstance(document, dict):  # the library's older return form
        return document.get("title") or None, document.get("text") or ""
    return document.title or None, document.text or ""
