"""API keys, body limits, rate limits, overload and the non-loopback bind rule."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import STRICT_KEYS
from tests.server import OASIS, Server, free_port, start_server
from tests.smollm2 import NEVER_END


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


def test_overload_is_503_with_retry_after(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "busy", config={"max_queue": 1})
    try:
        long_body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": 400,
            "stream": True,
            "logit_bias": NEVER_END,
        }
        started = threading.Event()
        release = threading.Event()

        def occupy() -> None:
            with httpx.stream(
                "POST",
                f"{srv.api_url}/chat/completions",
                json=long_body,
                headers={"Authorization": "Bearer k"},
                timeout=120,
            ) as response:
                for i, _ in enumerate(response.iter_lines()):
                    if i == 2:
                        started.set()
                    if release.is_set():
                        break  # leaving stops the generation

        worker = threading.Thread(target=occupy)
        worker.start()
        assert started.wait(60)
        response = httpx.post(
            f"{srv.api_url}/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": "Bearer k"},
        )
        release.set()
        worker.join()
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        _envelope(response)
    finally:
        srv.stop()


def test_refuses_public_bind_without_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            OASIS,
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "refusing to serve" in result.stderr


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
