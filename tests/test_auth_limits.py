"""API keys, body limits, rate limits and the non-loopback bind rule (overload: test_overload)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import STRICT_KEYS
from tests.server import OASIS, Server, free_port, start_server


def _envelope(response: httpx.Response) -> dict[str, object]:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"].startswith("req_")
    return error  # type: ignore[no-any-return]


def test_missing_key_is_401(strict_server: Server) -> None:
    response = httpx.get(f"{strict_server.api_url}/models")
    assert response.status_code == 401
    assert "didn't provide an API key" in str(_envelope(response)["message"])


def test_wrong_key_is_401_invalid_api_key(strict_server: Server) -> None:
    with (
        OpenAI(base_url=strict_server.api_url, api_key="sk-wrong-key-1234", max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        sdk.models.list()
    assert info.value.code == "invalid_api_key"
    assert "sk-wrong-key-1234" not in str(info.value)  # never echo a whole key


@pytest.mark.parametrize("key", STRICT_KEYS)
def test_each_configured_key_works(strict_server: Server, key: str) -> None:
    with OpenAI(
        base_url=strict_server.api_url,
        api_key=key,
        max_retries=0,
        _strict_response_validation=True,
    ) as sdk:
        assert any(m.id == "smollm2-135m-instruct" for m in sdk.models.list())


@pytest.mark.parametrize(
    "keys", [STRICT_KEYS, (STRICT_KEYS[0], STRICT_KEYS[0]), (STRICT_KEYS[0], "sk-not-a-key")]
)
def test_several_authorization_headers_are_400(
    strict_server: Server, keys: tuple[str, str]
) -> None:
    # Which of several headers counts differs between proxies and servers: refuse them all.
    headers = [("Authorization", f"Bearer {key}") for key in keys]
    response = httpx.get(f"{strict_server.api_url}/models", headers=headers)
    assert response.status_code == 400
    error = _envelope(response)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "duplicate_authorization_header"


def test_health_needs_no_key(strict_server: Server) -> None:
    assert httpx.get(f"{strict_server.base_url}/health").status_code == 200


def test_body_over_limit_is_413(strict_server: Server) -> None:
    headers = {"Authorization": f"Bearer {STRICT_KEYS[0]}"}
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = httpx.post(f"{strict_server.api_url}/chat/completions", json=big, headers=headers)
    assert response.status_code == 413
    _envelope(response)


def test_chunked_body_over_limit_is_413(strict_server: Server) -> None:
    headers = {"Authorization": f"Bearer {STRICT_KEYS[0]}", "content-type": "application/json"}

    def body() -> object:  # no Content-Length: the server must count as it reads
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}]}'

    response = httpx.post(
        f"{strict_server.api_url}/chat/completions", content=body(), headers=headers
    )
    assert response.status_code == 413
    _envelope(response)


def test_rate_limit_is_429_with_retry_after(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "rl", config={"rate_limit_rpm": 3, "preload": []})
    try:
        codes, remaining = [], []
        for _ in range(4):
            response = httpx.get(f"{srv.api_url}/models", headers={"Authorization": "Bearer k"})
            codes.append(response.status_code)
            remaining.append(response.headers["x-ratelimit-remaining-requests"])
            assert response.headers["x-ratelimit-limit-requests"] == "3"
            # A Go-style duration, as OpenAI writes it: "59.98s", "1m0s", "120ms".
            reset = response.headers["x-ratelimit-reset-requests"]
            assert re.fullmatch(r"(1m0s|\d{1,2}(\.\d+)?s|\d+ms)", reset), reset
        assert codes == [200, 200, 200, 429]
        assert remaining == ["2", "1", "0", "0"]
        assert int(response.headers["retry-after"]) >= 1
        assert _envelope(response)["code"] == "rate_limit_exceeded"
        # Limits are per key: another key is not held back.
        other = httpx.get(f"{srv.api_url}/models", headers={"Authorization": "Bearer k2"})
        assert other.status_code == 200
        assert other.headers["x-ratelimit-remaining-requests"] == "2"
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "127.0.0.1.evil.example", "127.evil.example", "10.0.0.1"]
)
def test_refuses_public_bind_without_keys(tmp_path: Path, host: str) -> None:
    result = subprocess.run(
        [
            OASIS,
            "serve",
            "--host",
            host,
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_bare_env(tmp_path),
    )
    assert result.returncode == 2
    assert "refusing to serve" in result.stderr


def _bare_env(home: Path) -> dict[str, str]:
    """No OASIS_* settings from the caller; PYTHONPATH kept, so the code under test runs."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def test_serves_ipv6_loopback_without_keys(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [OASIS, "serve", "--host", "::1", "--port", str(port), "--preload", ""]
            + ["--data-dir", str(tmp_path)],
            env=_bare_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        served = False
        deadline = time.monotonic() + 120
        while not served and process.poll() is None and time.monotonic() < deadline:
            try:
                served = httpx.get(f"http://[::1]:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert served, log.read_text(errors="replace")
    finally:
        process.terminate()
        process.wait(30)


def test_no_rate_limit_headers_without_a_limit(http: httpx.Client) -> None:
    response = http.get("/v1/models")
    assert response.status_code == 200
    assert not any(name.startswith("x-ratelimit") for name in response.headers)


def test_n_choices_do_not_overload_an_idle_model(tmp_path: Path) -> None:
    """A request's n choices are queued together as one request: with `max_queue` 1 an
    idle server still answers every choice of chat and completions, streamed or not."""
    srv = start_server(tmp_path / "choices", config={"max_queue": 1})
    try:
        with OpenAI(base_url=srv.api_url, api_key="k", max_retries=0) as sdk:
            chat = sdk.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=3,
                n=3,
            )
            assert sorted(c.index for c in chat.choices) == [0, 1, 2]
            chunks = sdk.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=3,
                n=3,
                stream=True,
            )
            finished = [c.choices[0].index for c in chunks if c.choices[0].finish_reason]
            assert sorted(finished) == [0, 1, 2]
            text = sdk.completions.create(model="gpt-4o-mini", prompt=["a", "b"], max_tokens=2, n=2)
            assert sorted(c.index for c in text.choices) == [0, 1, 2, 3]
    finally:
        srv.stop()
