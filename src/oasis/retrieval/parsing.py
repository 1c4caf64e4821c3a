"""Document bytes to plain text: text, Markdown, HTML, JSON, code, PDF and DOCX.

A file that cannot be read raises :class:`DocumentError`, whose ``code`` is the one a
vector-store file's ``last_error`` carries (``unsupported_file`` for a kind we do not
read, ``invalid_file`` for a damaged or empty one).
"""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Literal

ErrorCode = Literal["unsupported_file", "invalid_file"]

_HTML = frozenset({".html", ".htm", ".xhtml"})
# Binary formats that are surely not text; anything else is tried as UTF-8 text.
_BINARY = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".zip", ".gz", ".tar", ".mp3", ".wav", ".mp4"}
)
_SKIPPED_HTML = frozenset({"script", "style", "head", "noscript", "template"})
_BLOCK_HTML = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}
)


class DocumentError(Exception):
    """The file has no text we can read; ``str(exc)`` says why, for ``last_error``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code


def extract_text(data: bytes, filename: str) -> str:
    """The text of a document, chosen by its file name's extension (then by content)."""
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix == ".pdf" or data.startswith(b"%PDF-"):
        text = _pdf(data)
    elif suffix == ".docx":
        text = _docx(data)
    elif suffix in _BINARY:
        raise DocumentError("unsupported_file", f"Files of type '{suffix}' hold no text to index.")
    else:
        raw = _decode(data, filename)
        sniffed_html = not suffix and raw.lstrip()[:15].lower().startswith("<!doctype html")
        if suffix in _HTML or sniffed_html:
            text = _html(raw)
        elif suffix == ".json":
            text = _json(raw, filename)
        else:
            text = raw
    if not text.strip():
        raise DocumentError("invalid_file", f"The file '{filename}' contains no text.")
    return text


def _decode(data: bytes, filename: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            "unsupported_file",
            f"The file '{filename}' is not UTF-8 text, PDF or DOCX (byte {exc.start} "
            "cannot be decoded).",
        ) from exc
    if "\x00" in text:
        raise DocumentError("unsupported_file", f"The file '{filename}' is binary, not text.")
    return text


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError("invalid_file", f"The PDF cannot be read: {exc}") from exc
    return "\n\n".join(pages)


def _docx(data: bytes) -> str:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentError("invalid_file", f"The DOCX file cannot be read: {exc}") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(parts)


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_HTML:
            self._skipping += 1
        elif tag in _BLOCK_HTML:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_HTML and self._skipping:
            self._skipping -= 1
        elif tag in _BLOCK_HTML:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html(raw: str) -> str:
    parser = _TextOfHtml()
    parser.feed(raw)
    parser.close()
    text = "".join(parser.parts)
    return re.sub(r"\n\s*\n+", "\n\n", re.sub(r"[ \t]+", " ", text)).strip()


def _json(raw: str, filename: str) -> str:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        message = f"The file '{filename}' is not valid JSON: {exc}"
        raise DocumentError("invalid_file", message) from exc
    # Indented, so that chunks cut at line breaks keep keys next to their values.
    return json.dumps(value, indent=2, ensure_ascii=False)
