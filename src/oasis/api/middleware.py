"""Pure ASGI middleware: request ids, body limits, API keys, rate limits, disconnects.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched and a
client disconnect still reaches the endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oasis.access import Access
from oasis.api.errors import error_json
from oasis.caller import Caller, current_caller
from oasis.errors import (
    InvalidRequestError,
    OasisError,
    PayloadTooLargeError,
    PermissionDeniedError,
)
from oasis.ids import new_id
from oasis.limits import Limiter

log = logging.getLogger(__name__)

# The playground's page and its static files are public: the page asks its user for a key
# and sends it with each API call it makes.
OPEN_PATHS = frozenset(
    {
        "/health",
        "/health/live",
        "/health/ready",
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/playground",
    }
)
ADMIN_PREFIX = "/v1/organization/"
# Image URLs carry their own credential (a random name), like OpenAI's signed URLs, so a
# browser can show them without an API key.
OPEN_PREFIXES = ("/v1/images/files/", "/playground/")


async def send_error(
    send: Send, exc: OasisError, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = error_json(exc)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *[(k.lower().encode(), v.encode()) for k, v in exc.headers.items()],
        *headers,
    ]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    """Adds ``x-request-id`` and ``openai-processing-ms``; turns escaped errors into 500s."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req", nbytes=16)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                elapsed = int((time.perf_counter() - started) * 1000)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    (b"openai-processing-ms", str(elapsed).encode()),
                    (b"openai-version", b"2020-10-01"),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except OasisError as exc:
            if response_started:
                raise
            await send_error(send_with_headers, exc)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if response_started:
                raise
            await send_error(
                send_with_headers,
                OasisError(
                    "The server had an error while processing your request. Sorry about that!"
                ),
            )


# Room for the multipart framing (boundaries, part headers, small fields) around an
# upload's bytes: a route whose content may be N bytes takes bodies up to N plus this.
MULTIPART_ALLOWANCE = 64 * 1024


@dataclass(frozen=True)
class RouteLimit:
    """A body limit for one route that differs from the server's (uploads of files)."""

    method: str
    path: re.Pattern[str]
    max_bytes: int


class BodyLimitMiddleware:
    """413 for bodies past ``max_bytes``, by Content-Length or by counting as they arrive.

    Routes in ``routes`` have their own limit. Their bodies can be large, so a chunked one
    is counted as the app reads it instead of being buffered here; those routes read their
    bodies themselves (multipart), so the 413 raised from inside the read reaches the
    client as it is.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, routes: Sequence[RouteLimit] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = tuple(routes)

    @staticmethod
    def _too_large(limit: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(f"Request body too large: the limit is {limit} bytes.")

    def _route_limit(self, scope: Scope) -> int | None:
        for route in self.routes:
            if scope.get("method") == route.method and route.path.fullmatch(scope["path"]):
                return route.max_bytes
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route_limit = self._route_limit(scope)
        limit = self.max_bytes if route_limit is None else route_limit
        declared: int | None = None
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit():
                declared = int(value)
        if declared is not None:
            if declared > limit:
                await send_error(send, self._too_large(limit))
                return
            await self.app(scope, receive, send)
            return
        if route_limit is not None:
            await self.app(scope, self._counting(receive, limit), send)
            return
        # A chunked body has no declared length: read it here, counting, and replay it.
        # (An error raised inside the app's own read would surface as a 400 instead.)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending the whole body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_error(send, self._too_large(limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _counting(self, receive: Receive, limit: int) -> Receive:
        size = 0

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise self._too_large(limit)
            return message

        return counted


class CancelOnDisconnectMiddleware:
    """Cancels a request's work when its client goes away before the response is done.

    Without this a non-streaming request (a long completion, an image, a transcription)
    runs to its end for nobody while later requests wait for the model. Once the app has
    read the whole body, the only message the server can still deliver is
    ``http.disconnect``; this waits for it beside the app and cancels the app if it comes
    first. Reads the app makes after the body get the same disconnect, so a
    ``StreamingResponse`` listening for it still hears it. A request whose body the app
    never reads (a plain GET) is not watched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = asyncio.Event()
        gone = asyncio.Event()
        answered = False

        async def app_receive() -> Message:
            if body_read.is_set():
                await gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body", False):
                body_read.set()
            return message

        async def app_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        async def watch() -> None:
            try:
                await body_read.wait()
                while (await receive())["type"] != "http.disconnect":
                    pass  # nothing else follows a complete body; wait for what must come
            finally:
                gone.set()  # also when the server's receive fails: the client is unreachable

        work = asyncio.ensure_future(self.app(scope, app_receive, app_send))
        watcher = asyncio.ensure_future(watch())
        dropped = False
        try:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done() and gone.is_set() and not answered:
                dropped = True
                log.info(
                    "client left %s %s before the response; its work is cancelled",
                    scope.get("method"),
                    scope.get("path"),
                )
                work.cancel()
            try:
                await work
            except asyncio.CancelledError:
                this = asyncio.current_task()
                # Swallow only the cancel this middleware made, never one aimed at it.
                if not dropped or (this is not None and this.cancelling()):
                    raise
        finally:
            watcher.cancel()
            work.cancel()  # only matters when this task itself was cancelled


class AuthMiddleware:
    """Resolves ``Authorization: Bearer`` to a caller (:mod:`oasis.access`); applies limits.

    The caller's owner id becomes the request's owner, so stored objects stay private to
    the key (or project) that made them; the caller itself is set in
    :data:`oasis.caller.current_caller` for the services' usage records. Admin keys may
    use the organization endpoints and nothing else; nothing else may use those.
    """

    def __init__(self, app: ASGIApp, access: Access, limiter: Limiter) -> None:
        self.app = app
        self.access = access
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            caller, budgets = await self.access.authenticate(_bearer_token(scope))
            _check_role(caller, path)
            limits = await self.limiter.admit(budgets)
        except OasisError as exc:
            await send_error(send, exc)
            return
        state = scope.setdefault("state", {})
        state["owner"] = caller.owner
        state["caller"] = caller

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start" and limits:
                message["headers"] = [*message.get("headers", []), *limits]
            await send(message)

        token = current_caller.set(caller)
        try:
            await self.app(scope, receive, send_with_limits)
        finally:
            current_caller.reset(token)


def _check_role(caller: Caller, path: str) -> None:
    if path.startswith(ADMIN_PREFIX) and not caller.admin:
        raise PermissionDeniedError(
            "This endpoint needs an admin key (create one with `oasis keys create --admin`).",
            code="admin_key_required",
        )
    if caller.admin and not path.startswith(ADMIN_PREFIX):
        raise PermissionDeniedError(
            "Admin keys can only be used with the organization endpoints; use a project key.",
            code="project_key_required",
        )


def _bearer_token(scope: Scope) -> str | None:
    """The request's bearer token; 400 when it has several ``Authorization`` headers.

    Proxies and servers disagree on which of several wins, so a request that reaches us
    with two could be checked against one key and stored under the other.
    """
    values: list[bytes] = [
        value for name, value in scope.get("headers", []) if name == b"authorization"
    ]
    if len(values) > 1:
        raise InvalidRequestError(
            "The request has more than one Authorization header; send exactly one.",
            code="duplicate_authorization_header",
        )
    if not values:
        return None
    scheme, _, rest = values[0].decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not rest.strip():
        return None
    return rest.strip()
