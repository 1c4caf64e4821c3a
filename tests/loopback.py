"""HTTP servers of the tests' own on loopback: the pages, pictures and services that
oasis fetches from "outside" (with ``allow_private_urls``) or that a browser opens.

A handler class is served on a free port of 127.0.0.1 for the duration of a ``with``
block; a fixed set of files needs no handler of its own::

    with serving_files({"/page": ("text/html", PAGE)}) as url:   # http://127.0.0.1:PORT
        ...

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.reply(200, "text/plain", b"hello")

    with serving(Handler) as url:
        ...
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that writes no access log (pytest would show it as output)."""

    def reply(
        self, status: int, kind: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer ``status`` with ``body`` of content type ``kind`` (and its length)."""
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` on a free loopback port while the block runs; its base URL
    ``http://127.0.0.1:PORT`` (``localhost`` reaches it too)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving_files(files: Mapping[str, tuple[str, bytes]]) -> Iterator[str]:
    """Each path of ``files`` answering GET with its (content type, bytes), any other
    path 404, while the block runs; the base URL as :func:`serving` gives it."""

    class Files(QuietHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path in files:
                kind, body = files[path]
                self.reply(200, kind, body)
            else:
                self.reply(404, "text/plain", b"not found")

    with serving(Files) as url:
        yield url


def port_of(url: str) -> int:
    """The port of a loopback URL that :func:`serving` gave."""
    port = urlsplit(url).port
    assert port is not None
    return port
