"""Slow clients: a deadline for a request's headers and for each piece of its body.

Without them a client that sends half a request and stalls holds its connection (and,
once its headers are in, a running request) for as long as it likes; a few hundred such
clients exhaust the server. Headers are parsed by uvicorn's protocol before any ASGI code
runs, so their deadline lives in a subclass of that protocol; the body arrives through
ASGI ``receive``, so its deadline is a middleware. Either answers 408 and closes.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oasis.api.errors import error_json
from oasis.api.middleware import send_error
from oasis.errors import RequestTimeoutError

log = logging.getLogger(__name__)

CLOSE = (b"connection", b"close")


class BodyDeadlineMiddleware:
    """408 (and the connection closed) when a body stops arriving for ``timeout`` seconds.

    The deadline is per piece, not for the whole body, so a large upload on a slow link
    still gets through. Only reads while the body is incomplete are timed: once it is
    whole, a read waits for the client to leave, which may rightly take as long as the
    response does. After a 408 the app hears a disconnect and whatever it sends is dropped.
    """

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = expired = started = False

        async def timed_receive() -> Message:
            nonlocal body_done, expired
            if body_done:
                return await receive()
            if expired:
                return {"type": "http.disconnect"}
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                expired = True
                log.info(
                    "%s %s: no body for %ss; 408", scope.get("method"), scope["path"], self.timeout
                )
                if not started:
                    error = RequestTimeoutError(
                        f"The request body did not arrive in time: nothing came for "
                        f"{self.timeout:g} seconds."
                    )
                    await send_error(send, error, headers=[CLOSE])
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if expired:
                return  # the 408 (or a cut-off stream) was the answer
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not expired:
                raise
            # The app failed on the disconnect it was handed: the client already has its 408.
            log.debug("after a body timeout on %s", scope["path"], exc_info=True)


def _raw_408(timeout: float) -> bytes:
    error = RequestTimeoutError(
        f"The request headers did not arrive in time: the limit is {timeout:g} seconds."
    )
    body = error_json(error)
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def header_deadline_protocol(timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a deadline on each request's line and headers.

    The clock starts when a connection opens and when the first bytes of a later request
    on it arrive (between requests uvicorn's keep-alive timeout applies), and stops when
    the headers are complete. When it runs out, a client that had begun a request gets a
    408; one that sent nothing is just disconnected. Either way the connection closes.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _request_begun = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle:  # a request's headers are complete
                self._disarm()
            elif self._between_requests():
                self._request_begun = True
                if self._header_timer is None:
                    self._arm()

        def _between_requests(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(timeout, self._expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            self._request_begun = False

        def _expired(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or not self._between_requests():
                return
            if self._request_begun:
                log.info("request headers took longer than %ss; 408", timeout)
                self.transport.write(_raw_408(timeout))
            self.transport.close()

    return HeaderDeadlineProtocol
