"""Open MCP sessions, kept for reuse within a turn and across turns.

Opening a session costs a handshake (``initialize``, then ``notifications/initialized``)
before the first real request; a pooled session skips it. Sessions are keyed by the
caller's owner, the server's URL and the exact headers sent (``authorization`` included),
so a session opened with one set of secrets is never used with another, nor by another
owner.

A session's transport runs a task group that must be entered and left by one task, and
the agent loop that uses it yields between steps. So each session is held open by a task
of its own (:class:`_Held`), and callers only send requests through it. A session that
fails is dropped; a reused one is reopened once when the failure cannot have run the
request twice: always for an idempotent operation (listing tools), and for a call when
the server never got it (no connection, or HTTP 404: it no longer knows the session).
Sessions idle longer than ``idle_seconds`` are closed at the next use of the pool, the
least recently used idle one makes room past ``max_sessions``, and :meth:`close` ends
them all at shutdown.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx
import mcp_types
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError

from oasis.tools.mcp_client import (
    Bridge,
    McpFailure,
    Server,
    failure_from,
    open_session,
)
from oasis.tools.outbound import UrlPolicy

T = TypeVar("T")
Operation = Callable[[ClientSession], Awaitable[T]]
Key = tuple[str, str, tuple[tuple[str, str], ...]]

# The whole of one operation (connect, handshake, list or call); the outbound client's
# own timeouts bound each request within it.
OPERATION_SECONDS = 60.0
CLOSE_SECONDS = 5.0


class _Held:
    """One session, held open by its own task until :meth:`close`."""

    def __init__(self, server: Server, bridge: Bridge) -> None:
        self.server = server
        self.bridge = bridge
        self.session: ClientSession | None = None
        self.failure: BaseException | None = None  # why the session ended, if it failed
        self.ready = asyncio.Event()  # open, or failed to open
        self.busy = 0
        self.last_used = time.monotonic()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._hold())

    @property
    def alive(self) -> bool:
        return self.session is not None and not self._task.done()

    async def _hold(self) -> None:
        try:
            async with open_session(self.server, self.bridge) as session:
                self.session = session
                self.ready.set()
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - kept for the callers to report
            self.failure = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            self.ready.set()

    async def close(self) -> None:
        self._stop.set()
        await asyncio.wait({self._task}, timeout=CLOSE_SECONDS)
        self._task.cancel()


class SessionPool:
    """MCP sessions by (owner, server URL, headers); see the module docstring."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        policy: UrlPolicy,
        *,
        max_sessions: int = 32,
        idle_seconds: float = 120.0,
    ) -> None:
        self.http = http
        self.policy = policy
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self._held: dict[Key, _Held] = {}
        self.opened = 0  # sessions opened so far (for tests and benchmarks)

    async def list_tools(self, owner: str, server: Server, param: str) -> list[mcp_types.Tool]:
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

        return await self.run(owner, server, param, operation, idempotent=True)

    async def call_tool(
        self, owner: str, server: Server, param: str, name: str, arguments: dict[str, Any]
    ) -> str:
        """The tool's text result; :class:`McpFailure` when the call or the tool fails."""

        async def operation(session: ClientSession) -> mcp_types.CallToolResult:
            return await session.call_tool(name, arguments)

        result = await self.run(owner, server, param, operation, idempotent=False)
        content = [part.model_dump(mode="json", exclude_none=True) for part in result.content]
        if result.is_error:
            raise McpFailure({"type": "mcp_tool_execution_error", "content": content})
        texts = [part["text"] for part in content if part.get("type") == "text"]
        if len(texts) == len(content):
            return "".join(texts)
        if not content and result.structured_content is not None:
            return json.dumps(result.structured_content)
        return json.dumps(content)

    async def run(
        self,
        owner: str,
        server: Server,
        param: str,
        operation: Operation[T],
        *,
        idempotent: bool,
    ) -> T:
        """``operation(session)`` on a pooled session; :class:`McpFailure` when it fails.
        ``idempotent``: the operation may run twice (reopened after a failure)."""
        key: Key = (owner, server.url, tuple(sorted(server.headers.items())))
        try:
            with anyio.fail_after(OPERATION_SECONDS):
                for attempt in range(2):
                    held, fresh = await self._acquire(key, server, param)
                    try:
                        return await self._use(held, operation)
                    except _Dropped as dropped:
                        if attempt or fresh or not (idempotent or dropped.unsent):
                            raise McpFailure(dropped.error) from dropped.cause
                    finally:
                        self._release(key, held)
        except TimeoutError as exc:
            raise McpFailure(
                {
                    "type": "http_error",
                    "code": 504,
                    "message": "The MCP server did not answer in time.",
                }
            ) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _use(self, held: _Held, operation: Operation[T]) -> T:
        """Run ``operation``; a failure that leaves the session unusable drops it and
        raises :class:`_Dropped`."""
        assert held.session is not None
        bridge = held.bridge
        sent, errors = bridge.sent, bridge.errors
        try:
            return await operation(held.session)
        except Exception as exc:
            new = bridge.errors - errors
            # The requests' own errors: a stream the transport keeps open (GET) may fail
            # and reconnect meanwhile.
            recent = bridge.error_statuses[-new:] if new else []
            statuses = [code for method, code in recent if method == "POST"]
            if isinstance(exc, MCPError) and held.alive and not statuses:
                # A JSON-RPC error (an unknown tool, bad arguments): the session is fine.
                raise McpFailure(failure_from(exc, None)) from exc
            self._drop(held)
            cause = exc if held.alive or held.failure is None else held.failure
            error = failure_from(cause, statuses[-1] if statuses else None)
            # Not sent: no request got through, or the server answered 404 (it no longer
            # knows the session, so it ran nothing).
            unsent = bridge.sent == sent or (bool(statuses) and set(statuses) == {404})
            raise _Dropped(cause, error, unsent=unsent) from exc

    async def _acquire(self, key: Key, server: Server, param: str) -> tuple[_Held, bool]:
        """The session for ``key`` (opened now when there is none): (session, fresh)."""
        self._sweep()
        held = self._held.get(key)
        fresh = held is None or not (held.alive or not held.ready.is_set())
        if fresh:
            if held is not None:
                self._drop(held)
            held = _Held(server, Bridge(self.http, self.policy, param))
            self.opened += 1
            self._held[key] = held
            self._make_room()
        assert held is not None
        held.busy += 1
        held.bridge.param = param
        try:
            await held.ready.wait()
        except BaseException:  # cancelled, or out of time, while it opens
            self._release(key, held)
            raise
        if held.session is None or not held.alive:
            self._release(key, held)
            self._drop(held)
            raise McpFailure(failure_from(held.failure, held.bridge.error_status))
        return held, fresh

    def _release(self, key: Key, held: _Held) -> None:
        held.busy = max(0, held.busy - 1)
        held.last_used = time.monotonic()
        if held.busy == 0 and self._held.get(key) is not held:
            self._close_soon(held)  # dropped or evicted while in use

    def _drop(self, held: _Held) -> None:
        for key, value in list(self._held.items()):
            if value is held:
                del self._held[key]
        if held.busy == 0:
            self._close_soon(held)

    def _sweep(self) -> None:
        now = time.monotonic()
        for held in list(self._held.values()):
            if held.busy == 0 and now - held.last_used > self.idle_seconds:
                self._drop(held)

    def _make_room(self) -> None:
        idle = sorted(
            (h for h in self._held.values() if h.busy == 0 and h.ready.is_set()),
            key=lambda h: h.last_used,
        )
        while len(self._held) > self.max_sessions and idle:
            self._drop(idle.pop(0))

    def _close_soon(self, held: _Held) -> None:
        # Closing sends the server a DELETE; no caller should wait for it.
        task = asyncio.get_running_loop().create_task(held.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def close(self) -> None:
        """Close every session (at shutdown)."""
        held = list(self._held.values())
        self._held.clear()
        await asyncio.gather(*(h.close() for h in held), *list(_closing))


# Closing tasks, referenced until they end (the event loop keeps only weak references).
_closing: set[asyncio.Task[Any]] = set()


class _Dropped(Exception):
    """A failure that dropped its session: why, the ``error`` object to report, and
    ``unsent`` when the request cannot have run."""

    def __init__(self, cause: BaseException, error: Any, *, unsent: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.error = error
        self.unsent = unsent
