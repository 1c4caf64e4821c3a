"""A real MCP server, built with the ``mcp`` SDK, standing in for a remote one.

Run as ``python -m tests.mcp_server HTTP_PORT SSE_PORT STATEFUL_PORT``: the same tools over
streamable HTTP (``/mcp``, stateless), over the older SSE transport (``/sse``), and over
streamable HTTP with sessions the server remembers (``/mcp`` on the third port: a restarted
server no longer knows them), on loopback. Tools: a quick one (``add``), a slow one, one
that fails, one that needs a header, and a read-only one. ``GET /stats`` on each port says
how many sessions clients opened there (``initialize`` requests).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

SLOW_SECONDS = 1.0
KEY = "sesame"

server = MCPServer("oasis-test")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two whole numbers."""
    return str(a + b)


@server.tool()
async def slow() -> str:
    """Answers after a while."""
    await asyncio.sleep(SLOW_SECONDS)
    return "done"


@server.tool()
def broken() -> str:
    """Always fails."""
    raise ToolError("the tool broke")


@server.tool()
def whoami(ctx: Context) -> str:
    """Says who called; needs the X-Api-Key header."""
    headers = ctx.headers or {}
    if headers.get("x-api-key") != KEY:
        raise ToolError("missing or wrong X-Api-Key header")
    return f"hello {headers.get('authorization', 'anonymous')}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def clock() -> str:
    """A read-only tool."""
    return "noon"


class Counting:
    """ASGI middleware: counts ``initialize`` requests, and answers ``GET /stats``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.initialize = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/stats":
            body = json.dumps({"initialize": self.initialize}).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return

        async def counted() -> Any:
            message = await receive()
            if b'"method":"initialize"' in message.get("body", b"").replace(b" ", b""):
                self.initialize += 1
            return message

        await self.app(scope, counted, send)


async def serve(http_port: int, sse_port: int, stateful_port: int) -> None:
    """Serve the three endpoints until cancelled."""
    apps = (
        (server.streamable_http_app(stateless_http=True, json_response=True), http_port),
        (server.sse_app(), sse_port),
        (server.streamable_http_app(json_response=True), stateful_port),
    )
    servers = [
        uvicorn.Server(
            uvicorn.Config(Counting(app), host="127.0.0.1", port=port, log_level="warning")
        )
        for app, port in apps
    ]
    await asyncio.gather(*(s.serve() for s in servers))


@contextmanager
def running(ports: tuple[int, int, int] | None = None) -> Iterator[dict[str, str]]:
    """This server in a child process for the duration of the block: its ``http``
    (streamable HTTP), ``sse`` and ``stateful`` endpoint URLs. ``ports`` (free ones when
    not given) lets a test start it again where it was."""
    from tests.server import free_port

    http_port, sse_port, stateful_port = ports or (free_port(), free_port(), free_port())
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.mcp_server",
            str(http_port),
            str(sse_port),
            str(stateful_port),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        for port in (http_port, sse_port, stateful_port):
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("the test MCP server did not start") from None
                    time.sleep(0.2)
        yield {
            "http": f"http://127.0.0.1:{http_port}/mcp",
            "sse": f"http://127.0.0.1:{sse_port}/sse",
            "stateful": f"http://127.0.0.1:{stateful_port}/mcp",
        }
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
