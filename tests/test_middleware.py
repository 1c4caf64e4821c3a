"""CancelOnDisconnectMiddleware against the ASGI contract, in process.

The server side (what uvicorn's ``receive`` delivers, and when) is played by a queue: that
is the outside world here. The end-to-end check, a real client hanging up on the real
server, is tests/test_chat.py::test_disconnect_stops_generation.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oasis.api.middleware import CancelOnDisconnectMiddleware

SCOPE: Scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}
BODY: Message = {"type": "http.request", "body": b"{}", "more_body": False}
DISCONNECT: Message = {"type": "http.disconnect"}


class Connection:
    """What the server hands the app: messages on ``receive``, a log of ``send``."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return await self.inbox.get()

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def _answer(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok", "more_body": False})


async def _hang_up_while_running(app: ASGIApp) -> asyncio.Task[None]:
    """The request's body arrives, the app runs a while, then the client hangs up."""
    connection = Connection()
    await connection.inbox.put(BODY)
    task = asyncio.create_task(
        CancelOnDisconnectMiddleware(app)(SCOPE, connection.receive, connection.send)
    )
    await asyncio.sleep(0.05)
    await connection.inbox.put(DISCONNECT)
    return task


def test_a_hang_up_before_the_answer_cancels_the_work() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await asyncio.sleep(30)  # a long generation
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise

    async def scenario() -> None:
        middleware = await _hang_up_while_running(app)
        await asyncio.wait_for(middleware, 5)  # returns normally: nobody is left to answer

    asyncio.run(scenario())
    assert seen == {"cancelled": True}


def test_work_after_the_answer_runs_to_its_end() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await _answer(send)
        await asyncio.sleep(0.1)  # e.g. a background task after the response
        seen["finished"] = True

    async def scenario() -> None:
        connection = Connection()
        await connection.inbox.put(BODY)
        await connection.inbox.put(DISCONNECT)  # what a server says once the answer is out
        await CancelOnDisconnectMiddleware(app)(SCOPE, connection.receive, connection.send)
        assert [m["type"] for m in connection.sent] == [
            "http.response.start",
            "http.response.body",
        ]

    asyncio.run(scenario())
    assert seen == {"finished": True}


def test_reads_after_the_body_hear_the_disconnect() -> None:
    heard: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            heard.append((await receive())["type"])  # as a StreamingResponse listens
        except asyncio.CancelledError:
            heard.append("cancelled")

    async def scenario() -> None:
        await asyncio.wait_for(await _hang_up_while_running(app), 5)

    asyncio.run(scenario())
    # Either way the app stops: it hears the disconnect, or is cancelled while listening.
    assert heard in (["http.disconnect"], ["cancelled"])


def test_errors_of_the_app_pass_through() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise ValueError("boom")

    async def scenario() -> None:
        connection = Connection()
        await connection.inbox.put(BODY)
        await CancelOnDisconnectMiddleware(app)(SCOPE, connection.receive, connection.send)

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(scenario())


def test_a_cancel_aimed_at_the_request_is_not_swallowed() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.shield(asyncio.sleep(0.2))  # slow clean-up after the hang-up

    async def scenario() -> None:
        task = await _hang_up_while_running(app)  # the middleware cancels the app ...
        await asyncio.sleep(0.05)
        task.cancel()  # ... and the server shuts down while the app cleans up
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
