"""Numbered sources and the ``url_citation`` annotations that the model's ``[n]`` marks
become.

A tool that hands the model sources numbers them through the turn's :class:`Sources`
(one numbering per turn, however many searches run), and the text that cites them is
scanned by a :class:`CitationScanner`: each complete ``[n]`` naming a known source is one
annotation whose ``start_index``/``end_index`` cover the mark itself (in code points of
the text, ``end_index`` exclusive), so a client can turn the mark into a link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARK = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True)
class Source:
    """One numbered source: the page and its title."""

    url: str
    title: str


@dataclass
class Sources:
    """The sources of one turn, numbered from 1 in the order tools add them."""

    entries: list[Source] = field(default_factory=list)

    def add(self, url: str, title: str) -> int:
        """The number of ``url`` (an already numbered page keeps its number)."""
        for number, source in enumerate(self.entries, 1):
            if source.url == url:
                return number
        self.entries.append(Source(url, title))
        return len(self.entries)

    def get(self, number: int) -> Source | None:
        return self.entries[number - 1] if 1 <= number <= len(self.entries) else None

    def __bool__(self) -> bool:
        return bool(self.entries)


@dataclass(frozen=True)
class Citation:
    """A span of the text backed by a source."""

    source: Source
    start_index: int
    end_index: int

    def response_annotation(self) -> dict[str, object]:
        """As a Responses ``output_text`` annotation."""
        return {
            "type": "url_citation",
            "url": self.source.url,
            "title": self.source.title,
            "start_index": self.start_index,
            "end_index": self.end_index,
        }

    def chat_annotation(self) -> dict[str, object]:
        """As a Chat Completions message annotation."""
        return {
            "type": "url_citation",
            "url_citation": {
                "url": self.source.url,
                "title": self.source.title,
                "start_index": self.start_index,
                "end_index": self.end_index,
            },
        }


class CitationScanner:
    """Finds the citations of a text as it grows (a mark split across deltas is found
    once it is complete, and each mark only once)."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.scanned = 0  # marks before this offset are done

    def scan(self, text: str) -> list[Citation]:
        """The citations completed in ``text`` since the last scan."""
        found: list[Citation] = []
        for match in MARK.finditer(text, self.scanned):
            self.scanned = match.end()
            source = self.sources.get(int(match.group(1)))
            if source is not None:
                found.append(Citation(source, match.start(), match.end()))
        return found
