"""End to end: browsers may call oasis from the origins the operator lists (``cors_origins``).

A page using the OpenAI SDK in a browser first sends a preflight ``OPTIONS`` naming the
headers it will send (``authorization``, ``content-type``, ``x-stainless-*``,
``openai-*``); the browser only lets the page read an answer that names its origin.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from openai._models import FinalRequestOptions

from tests.server import OASIS, Server, start_server, write_config

KEY = "sk-cors-test"
APP = "https://app.example"


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("oasis-cors"),
        config={"preload": [], "cors_origins": [APP]},
        env={"OASIS_API_KEYS": KEY},
    )
    yield srv
    srv.stop()


def _sdk_request_headers() -> list[str]:
    """The headers the official SDK sets on a request that a page's script may set too
    (the browser sets ``host``, ``content-length`` and the like itself)."""
    sdk = OpenAI(base_url="http://unused/v1", api_key="k", organization="org", project="p")
    request = sdk._build_request(
        FinalRequestOptions(method="post", url="/chat/completions", json_data={})
    )
    browser_owned = {"host", "content-length", "connection", "accept-encoding"}
    return [name for name in request.headers if name.lower() not in browser_owned]


def test_a_preflight_with_the_sdk_headers_is_allowed(cors_server: Server) -> None:
    asked = _sdk_request_headers()
    assert any(h.startswith("x-stainless-") for h in asked) and "authorization" in asked
    answer = httpx.options(
        f"{cors_server.api_url}/chat/completions",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": ", ".join(asked),
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == APP
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {h.lower() for h in asked} <= allowed
    assert "POST" in answer.headers["access-control-allow-methods"]


def test_other_origins_and_headers_are_refused(cors_server: Server) -> None:
    elsewhere = httpx.options(
        f"{cors_server.api_url}/models",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert elsewhere.status_code == 400
    assert "access-control-allow-origin" not in elsewhere.headers
    odd = httpx.options(
        f"{cors_server.api_url}/models",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, x-something-else",
        },
    )
    assert odd.status_code == 400 and "x-something-else" in odd.text


def test_answers_name_the_origin_and_expose_the_request_id(cors_server: Server) -> None:
    ok = httpx.get(
        f"{cors_server.api_url}/models",
        headers={"Origin": APP, "Authorization": f"Bearer {KEY}"},
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in ok.headers["access-control-expose-headers"]
    # A refusal is readable by the page too, so the SDK can raise a clear error.
    refused = httpx.get(f"{cors_server.api_url}/models", headers={"Origin": APP})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == APP
    other = httpx.get(
        f"{cors_server.api_url}/models",
        headers={"Origin": "https://evil.example", "Authorization": f"Bearer {KEY}"},
    )
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_unless_configured(http: httpx.Client) -> None:
    answer = http.get("/v1/models", headers={"Origin": APP})
    assert "access-control-allow-origin" not in answer.headers


def test_any_origin_without_api_keys_is_refused_at_start(tmp_path: Path) -> None:
    config = write_config(tmp_path / "oasis.toml", {"preload": [], "cors_origins": ["*"]})
    result = subprocess.run(
        [OASIS, "serve", "--config", str(config), "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OASIS_API_KEYS": "", "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert "cors_origins" in result.stderr and "API keys" in result.stderr
