"""Numbered sources and the annotations that the model's ``[n]`` marks become.

A tool that hands the model sources numbers them through the turn's :class:`Sources`
(one numbering per turn, however many searches and tools run: web pages and files share
it), and the text that cites them streams through a :class:`CitationScanner`. Each
complete ``[n]`` naming a known source is one annotation, in code points of the text:

* a web page (``url_citation``): the mark stays, and ``start_index``/``end_index`` cover
  it (``end_index`` exclusive), so a client can turn the mark into a link;
* a file (``file_citation``): the mark and the spaces before it leave the text, and
  ``index`` is where it stood, as OpenAI places file citations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARK = re.compile(r"(\s*)\[(\d{1,3})\]")
# What may still grow into a mark (or the spaces a file mark takes with it).
_OPEN_MARK = re.compile(r"\s*(\[\d{0,3})?$")


@dataclass(frozen=True)
class Source:
    """One numbered source: a page (its URL and title) or a file (its id and name)."""

    url: str
    title: str
    file_id: str | None = None


@dataclass
class Sources:
    """The sources of one turn, numbered from 1 in the order tools add them."""

    entries: list[Source] = field(default_factory=list)

    def add(self, url: str, title: str) -> int:
        """The number of ``url`` (an already numbered page keeps its number)."""
        return self._number(Source(url, title))

    def add_file(self, file_id: str, filename: str) -> int:
        """The number of a file (each passage of one file shares its number)."""
        return self._number(Source("", filename, file_id))

    def _number(self, new: Source) -> int:
        for number, source in enumerate(self.entries, 1):
            if (source.url, source.file_id) == (new.url, new.file_id):
                return number
        self.entries.append(new)
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
        if self.source.file_id is not None:
            return {
                "type": "file_citation",
                "file_id": self.source.file_id,
                "filename": self.source.title,
                "index": self.start_index,
            }
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
    """Finds the citations of a text as it streams: :meth:`feed` takes each delta and
    gives back the text to send on (file marks removed, and the tail that may still
    become a mark held back until it is complete) and the citations completed, at offsets
    into the text sent. :meth:`flush` at the end sends what is held."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.held = ""  # the tail not yet sent: it may be the start of a mark
        self.sent = 0  # code points sent so far

    def feed(self, delta: str) -> tuple[str, list[Citation]]:
        """The text to send for ``delta`` and the citations it completes."""
        return self._scan(self.held + delta, final=False)

    def scan(self, text: str) -> list[Citation]:
        """The citations of a whole text (one that has no file marks to remove)."""
        return self.feed(text)[1] + self.flush()[1]

    def flush(self) -> tuple[str, list[Citation]]:
        """The held tail, sent as it is (a mark never completed is plain text)."""
        return self._scan(self.held, final=True)

    def _scan(self, text: str, *, final: bool) -> tuple[str, list[Citation]]:
        out: list[str] = []
        found: list[Citation] = []
        at = 0  # of ``text``, what is copied to ``out``
        length = self.sent  # offset, in the text sent, of ``text[at]``
        for match in MARK.finditer(text):
            source = self.sources.get(int(match.group(2)))
            if source is None:
                continue
            if source.file_id is None:
                start = length + match.start() - at + len(match.group(1))
                found.append(Citation(source, start, length + match.end() - at))
                continue
            out.append(text[at : match.start()])
            length += match.start() - at
            at = match.end()
            found.append(Citation(source, length, length))
        rest = text[at:]
        tail = 0 if final else len(_OPEN_MARK.search(rest).group(0))  # type: ignore[union-attr]
        out.append(rest[: len(rest) - tail])
        self.held = rest[len(rest) - tail :]
        emitted = "".join(out)
        self.sent += len(emitted)
        return emitted, found
