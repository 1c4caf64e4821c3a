"""Talking to a remote MCP server through the official ``mcp`` SDK.

The SDK speaks through an ``httpx2`` client; :class:`Bridge` is an ``httpx2`` transport that
sends each of its requests through the server's one outbound ``httpx`` client, after the
URL policy has passed it (so every request, a redirect followed by the SDK included, is
checked, and tests replace the outside world at that one client). Sessions are opened by
:func:`open_session` (streamable HTTP first; a server that refuses it with an HTTP error
is asked again over the older SSE transport) and kept open for reuse by
:class:`~oasis.tools.mcp_sessions.SessionPool`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import httpx2
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from oasis.tools.outbound import UrlPolicy
from oasis.types import Item


@dataclass(frozen=True)
class Server:
    """Where an MCP server is and what to send it."""

    url: str
    headers: dict[str, str]


class McpFailure(Exception):
    """An operation failed; ``error`` is the ``mcp_call.error`` object that says how."""

    def __init__(self, error: Item) -> None:
        super().__init__(error.get("message") or json.dumps(error.get("content")))
        self.error = error


class _Body(httpx2.AsyncByteStream):
    """An ``httpx`` response body, read by ``httpx2``."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self.response.aclose()


class Bridge(httpx2.AsyncBaseTransport):
    """Sends the SDK's requests through the outbound client, under the URL policy; keeps
    the HTTP error statuses (the SDK turns them into JSON-RPC errors without them) and
    counts the requests that may have reached the server."""

    def __init__(self, http: httpx.AsyncClient, policy: UrlPolicy, param: str) -> None:
        self.http = http
        self.policy = policy
        self.param = param
        self.error_statuses: list[tuple[str, int]] = []  # the latest (method, HTTP error)
        self.errors = 0  # HTTP errors so far
        self.sent = 0  # requests that may have reached the server

    @property
    def error_status(self) -> int | None:
        """The last HTTP error status, if any."""
        return self.error_statuses[-1][1] if self.error_statuses else None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        await self.policy.check(url, param=self.param)
        outbound = self.http.build_request(
            request.method, url, headers=list(request.headers.raw), content=await request.aread()
        )
        try:
            response = await self.http.send(outbound, stream=True)
        except httpx.ConnectError as exc:  # no connection: the request was not sent
            raise httpx2.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        except httpx.TimeoutException as exc:
            self.sent += 1
            raise httpx2.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except httpx.HTTPError as exc:
            self.sent += 1
            raise httpx2.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        self.sent += 1
        if response.status_code >= 400 and request.method != "DELETE":
            self.errors += 1
            self.error_statuses.append((request.method, response.status_code))
            del self.error_statuses[:-16]  # a long-lived session keeps only the latest
        return httpx2.Response(
            response.status_code,
            headers=list(response.headers.raw),
            stream=_Body(response),
            request=request,
        )


@asynccontextmanager
async def _session(server: Server, bridge: Bridge, *, sse: bool) -> AsyncIterator[ClientSession]:
    def client(headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            transport=bridge, headers={**(headers or {}), **server.headers}, follow_redirects=False
        )

    if sse:

        def factory(
            headers: dict[str, str] | None = None,
            timeout: httpx2.Timeout | None = None,
            auth: httpx2.Auth | None = None,
        ) -> httpx2.AsyncClient:
            return client(headers)

        async with (
            sse_client(server.url, httpx_client_factory=factory) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session
        return
    async with (
        client() as http,
        streamable_http_client(server.url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def open_session(server: Server, bridge: Bridge) -> AsyncIterator[ClientSession]:
    """An initialized session over streamable HTTP, or over SSE where the server answers
    the streamable handshake with an HTTP error (an older server)."""
    connected = False
    try:
        async with _session(server, bridge, sse=False) as session:
            connected = True
            yield session
            return
    except Exception:
        if connected or bridge.error_status is None:
            raise
    bridge.error_statuses.clear()
    async with _session(server, bridge, sse=True) as session:
        yield session


def failure_from(exc: BaseException | None, status: int | None) -> Item:
    """The ``mcp_call.error`` object for a failed operation: the HTTP error the server
    answered (``status``), else the JSON-RPC error, else why it could not be reached."""
    if status is not None:
        return {
            "type": "http_error",
            "code": status,
            "message": f"The MCP server answered HTTP {status}.",
        }
    if exc is None:
        return {"type": "http_error", "code": 502, "message": "Could not reach the MCP server."}
    return _protocol_error(exc) or {"type": "http_error", "code": 502, "message": _message(exc)}


def _leaves(exc: BaseException) -> list[BaseException]:
    """An exception, or the leaves of the exception group the SDK's task groups raise."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _protocol_error(exc: BaseException) -> Item | None:
    for leaf in _leaves(exc):
        if isinstance(leaf, MCPError):
            return {"type": "mcp_protocol_error", "code": leaf.code, "message": leaf.error.message}
    return None


def _message(exc: BaseException) -> str:
    leaves = _leaves(exc)
    text = "; ".join(str(leaf) for leaf in leaves if str(leaf)) or type(leaves[0]).__name__
    return f"Could not reach the MCP server: {text}"
