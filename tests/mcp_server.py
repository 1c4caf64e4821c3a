"""A real MCP server, built with the ``mcp`` SDK, standing in for a remote one.

Run as ``python -m tests.mcp_server HTTP_PORT SSE_PORT``: the same tools over streamable
HTTP (``/mcp``) and over the older SSE transport (``/sse``), on loopback. Tools: a quick
one (``add``), a slow one, one that fails, one that needs a header, and a read-only one.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


async def serve(http_port: int, sse_port: int) -> None:
    """Serve both transports until cancelled."""
    http_app = server.streamable_http_app(stateless_http=True, json_response=True)
    sse_app = server.sse_app()
    servers = [
        uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        for app, port in ((http_app, http_port), (sse_app, sse_port))
    ]
    await asyncio.gather(*(s.serve() for s in servers))


@contextmanager
def running() -> Iterator[dict[str, str]]:
    """This server in a child process for the duration of the block: its ``http``
    (streamable HTTP) and ``sse`` endpoint URLs."""
    from tests.server import free_port

    http_port, sse_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.mcp_server", str(http_port), str(sse_port)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        for port in (http_port, sse_port):
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
        }
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2])))
