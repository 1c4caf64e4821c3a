"""Requests and tokens per minute per key and per project, counted in the database.

Counts are per minute window: a test that needs one window whole waits for a fresh minute
when the current one has too little left, so a burst is never split across two windows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.server import Server, oasis_cli, sdk_for, start_server

MODEL = "smollm2-135m-instruct"


def _fresh_minute(needed: float = 40) -> None:
    """Wait for the next minute when less than ``needed`` seconds of this one are left."""
    into = time.time() % 60
    if 60 - into < needed:
        time.sleep(60 - into + 0.5)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("oasis-limits")
    for project in ("rpm", "shared", "tokens", "capped"):
        args = ["projects", "create", project]
        if project == "shared":
            args += ["--rpm", "12"]
        if project == "capped":
            args += ["--max-tokens", "3"]
        oasis_cli(data, *args)
    server = start_server(data, config={"preload": [MODEL]})
    yield server
    server.stop()


async def _burst(urls_and_keys: list[tuple[str, str]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as http:
        return list(
            await asyncio.gather(
                *(
                    http.get(f"{url}/models", headers={"Authorization": f"Bearer {key}"})
                    for url, key in urls_and_keys
                )
            )
        )


def _check_refusals(responses: list[httpx.Response], allowed: int) -> None:
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * allowed + [429] * (len(responses) - allowed)
    for response in responses:
        if response.status_code == 429:
            assert 1 <= int(response.headers["retry-after"]) <= 60
            assert response.headers["x-ratelimit-remaining-requests"] == "0"
            error = response.json()["error"]
            assert error["code"] == "rate_limit_exceeded"
            assert error["type"] == "requests"


def test_50_concurrent_requests_against_a_key_rpm(limited: Server) -> None:
    key = oasis_cli(limited.data_dir, "keys", "create", "--project", "rpm", "--rpm", "20")
    _fresh_minute()
    responses = asyncio.run(_burst([(limited.api_url, key)] * 50))
    _check_refusals(responses, 20)
    admitted = [r for r in responses if r.status_code == 200]
    assert {r.headers["x-ratelimit-limit-requests"] for r in admitted} == {"20"}
    # Every admitted request saw a different count left: none was counted twice or lost.
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in admitted)
    assert remaining == list(range(20))


def test_a_project_limit_holds_across_its_keys_and_two_replicas(
    limited: Server, tmp_path: Path
) -> None:
    data = limited.data_dir
    one = oasis_cli(data, "keys", "create", "--project", "shared")
    two = oasis_cli(data, "keys", "create", "--project", "shared")
    replica = start_server(data, config={"preload": []})  # the same database
    try:
        _fresh_minute()
        targets = [
            (server.api_url, key) for server in (limited, replica) for key in (one, two)
        ] * 13  # 52 requests, 13 on each server and key
        _check_refusals(asyncio.run(_burst(targets[:50])), 12)
    finally:
        replica.stop()


def test_tokens_per_minute_refuse_once_spent(limited: Server) -> None:
    key = oasis_cli(limited.data_dir, "keys", "create", "--project", "tokens", "--tpm", "20")
    _fresh_minute()
    with OpenAI(base_url=limited.api_url, api_key=key, max_retries=0, timeout=120) as sdk:
        first = sdk.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "Hello there"}], max_tokens=4
        )
        assert first.headers["x-ratelimit-limit-tokens"] == "20"
        assert first.headers["x-ratelimit-remaining-tokens"] == "20"  # nothing spent before it
        used = first.parse().usage
        assert used is not None and used.total_tokens >= 20  # the chat template alone
    refused = httpx.get(f"{limited.api_url}/models", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert int(refused.headers["retry-after"]) >= 1


def test_a_project_max_tokens_ceiling_caps_every_request(limited: Server) -> None:
    key = oasis_cli(limited.data_dir, "keys", "create", "--project", "capped")
    with sdk_for(limited, key) as sdk:
        chat = sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Count from one to twenty."}],
            max_tokens=50,
        )
        assert chat.usage is not None and chat.usage.completion_tokens <= 3
        assert chat.choices[0].finish_reason == "length"
        response = sdk.responses.create(
            model=MODEL, input="Count from one to twenty.", max_output_tokens=50
        )
        assert response.usage is not None and response.usage.output_tokens <= 3
