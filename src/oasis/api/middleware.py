"""Pure ASGI middleware: request ids, body limits, API keys, rate limits, disconnects.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched and a
client disconnect still reaches the endpoint.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oasis.api.errors import error_json
from oasis.errors import (
    AuthenticationError,
    InvalidRequestError,
    OasisError,
    PayloadTooLargeError,
    RateLimitError,
)
from oasis.ids import new_id
from oasis.owners import OwnerIds

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health", "/healthz", "/readyz"})
# Image URLs carry their own credential (a random name), like OpenAI's signed URLs, so a
# browser can show them without an API key.
OPEN_PREFIXES = ("/v1/images/files/",)


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


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's rate-limit headers write it: ``120ms``, ``1.5s``, ``1m0s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


class AuthMiddleware:
    """Checks ``Authorization: Bearer`` against the configured keys; applies rate limits.

    With no keys configured every key is accepted. Either way the key's owner id (an HMAC,
    :mod:`oasis.owners`) becomes the request's owner, so stored objects stay private to
    the key that made them.
    """

    def __init__(
        self,
        app: ASGIApp,
        api_keys: list[str],
        rate_limit_rpm: int | None,
        owner_ids: OwnerIds,
    ) -> None:
        self.app = app
        self._keys = [k.encode() for k in api_keys]
        self.owner_ids = owner_ids
        self.rate_limit_rpm = rate_limit_rpm
        self._windows: dict[str, deque[float]] = {}

    def _key_ok(self, token: str) -> bool:
        candidate = token.encode()
        ok = False
        for key in self._keys:  # compare with every key: timing says nothing of which
            ok |= hmac.compare_digest(candidate, key)
        return ok

    def _check_rate(self, owner: str) -> list[tuple[bytes, bytes]]:
        """Count this request against ``owner``'s minute; the ``x-ratelimit-*`` headers.

        Raises the 429 (with the same headers) when the minute is full. No limit, no headers.
        """
        if not self.rate_limit_rpm:
            return []
        now = time.monotonic()
        if len(self._windows) > 10_000:
            # With no keys configured any token is an owner: forget idle ones so that
            # random tokens cannot grow this table without bound.
            idle = [o for o, w in self._windows.items() if not w or now - w[-1] >= 60]
            for stale in idle:
                del self._windows[stale]
        window = self._windows.setdefault(owner, deque())
        while window and now - window[0] >= 60:
            window.popleft()
        if len(window) >= self.rate_limit_rpm:
            retry = max(1, int(60 - (now - window[0])) + 1)
            raise RateLimitError(
                f"Rate limit reached for requests per min (RPM): Limit {self.rate_limit_rpm}, "
                f"Used {len(window)}, Requested 1. Please try again in {retry}s.",
                retry_after=retry,
                headers=self._rate_headers(window, now),
            )
        window.append(now)
        return [(k.encode(), v.encode()) for k, v in self._rate_headers(window, now).items()]

    def _rate_headers(self, window: deque[float], now: float) -> dict[str, str]:
        # As OpenAI sends them: the reset is the time until the whole minute's budget is
        # back (until the newest request in the window leaves it).
        reset = max(0.0, 60 - (now - window[-1])) if window else 0.0
        return {
            "x-ratelimit-limit-requests": str(self.rate_limit_rpm),
            "x-ratelimit-remaining-requests": str(max(0, (self.rate_limit_rpm or 0) - len(window))),
            "x-ratelimit-reset-requests": go_duration(reset),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or scope["path"].startswith(OPEN_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        try:
            token = _bearer_token(scope)
            if self._keys:
                if token is None:
                    raise AuthenticationError(
                        "You didn't provide an API key. You need to provide your API key in "
                        "an Authorization header using Bearer auth (i.e. Authorization: "
                        "Bearer YOUR_KEY)."
                    )
                if not self._key_ok(token):
                    shown = f"{token[:3]}***{token[-4:]}" if len(token) > 8 else "***"
                    raise AuthenticationError(
                        f"Incorrect API key provided: {shown}.", code="invalid_api_key"
                    )
            owner = self.owner_ids.of(token)
            limits = self._check_rate(owner)
        except OasisError as exc:
            await send_error(send, exc)
            return
        scope.setdefault("state", {})["owner"] = owner
        if not limits:
            await self.app(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *limits]
            await send(message)

        await self.app(scope, receive, send_with_limits)


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
