"""Tools at the boundary: each ``tools[i]`` checked by its type, 400s naming the field;
a type the API does not define refused by name; the outbound URL policy."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from oasis.errors import InvalidRequestError
from oasis.tools.outbound import OutboundError, UrlPolicy, create_http_client, fetch
from tests.loopback import QuietHandler, serving
from tests.responses_helpers import MODEL

FUNCTION = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"type": "function"}], "tools[0].name"),
        ([{"type": "function", "name": "bad name"}], "tools[0].name"),
        ([FUNCTION, {"type": "function", "name": "f"}], "tools[1].name"),
        (
            [{"type": "function", "name": "f", "parameters": {"type": "string"}}],
            "tools[0].parameters",
        ),
        ([FUNCTION, {"type": "file_search"}], "tools[1].vector_store_ids"),
        (
            [{"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 99}],
            "tools[0].max_num_results",
        ),
        ([{"type": "mcp", "server_url": "https://example.com"}], "tools[0].server_label"),
        ([{"type": "computer_use_preview", "display_width": 10}], "tools[0].display_height"),
        ([{"type": "code_interpreter"}], "tools[0].container"),
        ([{"type": "web_search", "search_context_size": "huge"}], "tools[0].search_context_size"),
        ([{"type": "image_generation", "output_format": "gif"}], "tools[0].output_format"),
        ([{"type": "custom"}], "tools[0].name"),
        ([FUNCTION, {"type": "teleport"}], "tools[1].type"),
        ([{"name": "f"}], "tools[0].type"),
    ],
)
def test_bad_tools_are_400_naming_the_field(
    http: httpx.Client, tools: list[object], param: str
) -> None:
    response = http.post("/v1/responses", json={"model": MODEL, "input": "hi", "tools": tools})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_chat_and_responses_share_the_function_checks(http: httpx.Client) -> None:
    twice = {"type": "function", "function": {"name": "f"}}
    chat = http.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [twice, twice],
        },
    )
    responses = http.post(
        "/v1/responses",
        json={"model": MODEL, "input": "hi", "tools": [FUNCTION, FUNCTION]},
    )
    assert chat.status_code == responses.status_code == 400
    assert chat.json()["error"]["message"] == responses.json()["error"]["message"]
    assert chat.json()["error"]["param"] == "tools[1].function.name"
    assert responses.json()["error"]["param"] == "tools[1].name"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8000/",
        "http://10.1.2.3/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "ftp://example.com/",
    ],
)
def test_the_url_policy_refuses_private_and_non_http_targets(url: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        asyncio.run(UrlPolicy().check(url, param="tools[0].server_url"))
    assert err.value.param == "tools[0].server_url"


def test_the_url_policy_allows_public_and_operator_allowed_private_targets() -> None:
    asyncio.run(UrlPolicy().check("https://93.184.215.14/", param="p"))
    asyncio.run(UrlPolicy(allow_private=True).check("http://127.0.0.1:9000/", param="p"))
    with pytest.raises(InvalidRequestError):
        asyncio.run(UrlPolicy(allow_private=True).check("gopher://127.0.0.1/", param="p"))


def test_the_tools_client_checks_the_address_it_connects_to() -> None:
    """The guard sits in the client's network backend: a name that resolves to loopback is
    refused when connecting, whatever was checked before (DNS rebinding)."""

    async def get(policy: UrlPolicy) -> int:
        async with create_http_client(policy=policy) as client:
            return (await client.get(f"{url.replace('127.0.0.1', 'localhost')}/")).status_code

    with serving(_Hello) as url:
        with pytest.raises(httpx.ConnectError, match="private or loopback"):
            asyncio.run(get(UrlPolicy()))
        assert asyncio.run(get(UrlPolicy(allow_private=True))) == 200


def test_fetch_rechecks_each_redirect_and_caps_the_body() -> None:
    async def go(path: str, policy: UrlPolicy, max_bytes: int = 1000) -> str:
        async with create_http_client(policy=policy) as client:
            try:
                page = await fetch(client, policy, f"{url}{path}", max_bytes=max_bytes)
            except OutboundError as exc:
                return f"error: {exc}"
            return f"{page.url} {page.text}"

    allowed = UrlPolicy(allow_private=True)
    with serving(_Hello) as url:
        assert asyncio.run(go("/hop", allowed)) == f"{url}/ hello"
        assert "must be an http or https URL" in asyncio.run(go("/away", allowed))
        assert "larger than 3 bytes" in asyncio.run(go("/", allowed, max_bytes=3))
        assert "private or loopback" in asyncio.run(go("/", UrlPolicy()))


class _Hello(QuietHandler):
    """``/`` says hello, ``/hop`` redirects there, ``/away`` redirects to a file URL (which
    a redirect must not reach even where private addresses may be)."""

    def do_GET(self) -> None:
        targets = {"/hop": "/", "/away": "file:///etc/passwd"}
        if self.path in targets:
            self.reply(302, "text/plain", b"", {"Location": targets[self.path]})
            return
        self.reply(200, "text/plain; charset=utf-8", b"hello")
