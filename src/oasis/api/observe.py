"""Metrics and access logs for every request (pure ASGI, outermost).

With ``log_format = "json"`` each request ends in one JSON line on the ``oasis.access``
logger: the request id, the key id and project (never the secret), the model and tokens
the request used, its status and duration.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oasis.caller import Caller
from oasis.metrics import Metrics

access_log = logging.getLogger("oasis.access")


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class ObserveMiddleware:
    """Counts and times each request; writes the JSON access line when asked."""

    def __init__(self, app: ASGIApp, metrics: Metrics, json_log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.json_log = json_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if nothing is sent
        streamed = False
        first_event: float | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status, streamed, first_event
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name == b"content-type" and value.startswith(b"text/event-stream"):
                        streamed = True
            elif streamed and first_event is None and message.get("body"):
                first_event = time.perf_counter() - started
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.metrics.in_progress.dec()
            elapsed = time.perf_counter() - started
            route = _route(scope)
            self.metrics.requests.labels(scope.get("method", ""), route, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            if first_event is not None:
                self.metrics.first_token.labels(route).observe(first_event)
            if self.json_log:
                access_log.info("%s", json.dumps(_line(scope, route, status, elapsed, first_event)))


def _line(
    scope: Scope, route: str, status: int, elapsed: float, first_event: float | None
) -> dict[str, Any]:
    state = scope.get("state", {})
    caller = state.get("caller")
    client = scope.get("client")
    line: dict[str, Any] = {
        "time": round(time.time(), 3),
        "request_id": state.get("request_id"),
        "method": scope.get("method"),
        "path": scope.get("path"),
        "route": route,
        "status": status,
        "duration_ms": round(elapsed * 1000, 1),
        "client": client[0] if client else None,
        "key_id": None,
        "project_id": None,
        "model": None,
        "input_tokens": None,
        "output_tokens": None,
    }
    if first_event is not None:
        line["first_event_ms"] = round(first_event * 1000, 1)
    if isinstance(caller, Caller):
        line["key_id"] = caller.key_id
        line["project_id"] = caller.project_id
        if caller.used:
            line["model"] = caller.model
            line["input_tokens"] = caller.input_tokens
            line["output_tokens"] = caller.output_tokens
    return line
