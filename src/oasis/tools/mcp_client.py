"""Talking to a remote MCP server through the official ``mcp`` SDK.

The SDK speaks through an ``httpx2`` client; :class:`_Bridge` is an ``httpx2`` transport that
sends each of its requests through the server's one outbound ``httpx`` client, after the
URL policy has passed it (so every request, a redirect followed by the SDK included, is
checked, and tests replace the outside world at that one client). Each operation opens
its own session and closes it before returning: a session's task group must not stay
open across the agent loop's ``yield`` s. Streamable HTTP first; a server that refuses it
with an HTTP error is asked again over the older SSE transport.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from oasis.tools.outbound import UrlPolicy
from oasis.types import Item

# The whole of one operation (connect, handshake, list or call); the outbound client's
# own timeouts bound each request within it.
OPERATION_SECONDS = 60.0


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


class _Bridge(httpx2.AsyncBaseTransport):
    """Sends the SDK's requests through the outbound client, under the URL policy; keeps
    the last HTTP error status (the SDK turns it into a JSON-RPC error without it)."""

    def __init__(self, http: httpx.AsyncClient, policy: UrlPolicy, param: str) -> None:
        self.http = http
        self.policy = policy
        self.param = param
        self.error_status: int | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        await self.policy.check(url, param=self.param)
        outbound = self.http.build_request(
            request.method, url, headers=list(request.headers.raw), content=await request.aread()
        )
        try:
            response = await self.http.send(outbound, stream=True)
        except httpx.TimeoutException as exc:
            raise httpx2.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except httpx.HTTPError as exc:
            raise httpx2.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        if response.status_code >= 400 and request.method != "DELETE":
            self.error_status = response.status_code
        return httpx2.Response(
            response.status_code,
            headers=list(response.headers.raw),
            stream=_Body(response),
            request=request,
        )


@asynccontextmanager
async def _session(server: Server, bridge: _Bridge, *, sse: bool) -> AsyncIterator[ClientSession]:
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


async def _run(
    server: Server, http: httpx.AsyncClient, policy: UrlPolicy, param: str, operation: Any
) -> Any:
    """``operation(session)`` over streamable HTTP, or over SSE where the server answers
    the streamable handshake with an HTTP error (an older server)."""
    bridge = _Bridge(http, policy, param)
    try:
        with anyio.fail_after(OPERATION_SECONDS):
            connected = False
            try:
                async with _session(server, bridge, sse=False) as session:
                    connected = True
                    return await operation(session)
            except Exception:
                if connected or bridge.error_status is None:
                    raise
            bridge.error_status = None
            async with _session(server, bridge, sse=True) as session:
                return await operation(session)
    except McpFailure:
        raise
    except TimeoutError as exc:
        raise McpFailure(
            {"type": "http_error", "code": 504, "message": "The MCP server did not answer in time."}
        ) from exc
    except Exception as exc:
        if bridge.error_status is not None:
            error: Item = {
                "type": "http_error",
                "code": bridge.error_status,
                "message": f"The MCP server answered HTTP {bridge.error_status}.",
            }
        else:
            error = _protocol_error(exc) or {
                "type": "http_error",
                "code": 502,
                "message": _message(exc),
            }
        raise McpFailure(error) from exc


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


async def list_tools(
    server: Server, http: httpx.AsyncClient, policy: UrlPolicy, param: str
) -> list[mcp_types.Tool]:
    """Every tool the server offers (all pages); :class:`McpFailure` if it cannot say."""

    async def operation(session: ClientSession) -> list[mcp_types.Tool]:
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(100):  # a server whose pages never end cannot hang the turn
            page = await session.list_tools(
                params=mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            )
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    result: list[mcp_types.Tool] = await _run(server, http, policy, param, operation)
    return result


async def call_tool(
    server: Server,
    http: httpx.AsyncClient,
    policy: UrlPolicy,
    param: str,
    name: str,
    arguments: dict[str, Any],
) -> str:
    """The tool's text result; :class:`McpFailure` when the call or the tool fails."""

    async def operation(session: ClientSession) -> mcp_types.CallToolResult:
        return await session.call_tool(name, arguments)

    result: mcp_types.CallToolResult = await _run(server, http, policy, param, operation)
    content = [part.model_dump(mode="json", exclude_none=True) for part in result.content]
    if result.is_error:
        raise McpFailure({"type": "mcp_tool_execution_error", "content": content})
    texts = [part["text"] for part in content if part.get("type") == "text"]
    if len(texts) == len(content):
        return "".join(texts)
    if not content and result.structured_content is not None:
        return json.dumps(result.structured_content)
    return json.dumps(content)
