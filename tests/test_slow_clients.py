"""Slow clients: a request whose headers or body stop arriving gets 408 and is closed.

A raw socket plays the client, since no HTTP library sends half a request on purpose. The
server's deadlines are short here (``header_timeout``, ``body_timeout``); the socket waits
far longer, so what is checked is that the server gives up, never how fast.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from openai import OpenAI

from tests.server import Server, start_server

PATIENCE = 60.0  # seconds the client waits; the server's deadlines are 1 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("oasis-slow"),
        config={"header_timeout": 1, "body_timeout": 1, "preload": []},
    )
    yield srv
    srv.stop()


def _stall_after(server: Server, sent: bytes) -> bytes:
    """Send ``sent``, then nothing; everything the server writes until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE) as sock:
        sock.sendall(sent)
        received = b""
        while chunk := sock.recv(65536):  # a timeout here (the server never gave up) fails
            received += chunk
        return received


def _408_envelope(answer: bytes) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 408"), answer
    assert "connection: close" in [line.lower() for line in lines[1:]]
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error  # type: ignore[no-any-return]


def test_half_a_request_line_gets_408(server: Server) -> None:
    _408_envelope(_stall_after(server, b"POST /v1/chat/compl"))


def test_headers_that_stop_get_408(server: Server) -> None:
    _408_envelope(_stall_after(server, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAccept: "))


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    assert _stall_after(server, b"") == b""


def test_a_body_that_stops_gets_408(server: Server) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    error = _408_envelope(_stall_after(server, head + b'{"model": '))
    assert "body" in str(error["message"])
    assert "Traceback" not in server.log()  # the app's failed read is not an error


def test_a_chunked_body_that_stops_gets_408(server: Server) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    _408_envelope(_stall_after(server, head + b'a\r\n{"model": \r\n'))


def test_a_prompt_client_is_served(server: Server) -> None:
    with OpenAI(
        base_url=server.api_url, api_key="sk-test", max_retries=0, _strict_response_validation=True
    ) as sdk:
        assert any(m.id == "smollm2-135m-instruct" for m in sdk.models.list())
        conversation = sdk.conversations.create(metadata={"topic": "deadlines"})
        assert sdk.conversations.retrieve(conversation.id).metadata == {"topic": "deadlines"}
