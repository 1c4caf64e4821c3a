"""Outbound traffic of tools: one injected HTTP client, and the policy for where it may go.

The app creates the client in its lifespan and closes it at shutdown; tools reach it
through their :class:`~oasis.tools.base.ToolContext`, so tests replace the outside world
at the transport (``create_app(settings, http_transport=httpx.MockTransport(...))``).

A URL that a request supplies (an MCP ``server_url``, a page a search result names) may
reach only public http(s) addresses unless the operator sets ``allow_private_urls``:

* :meth:`UrlPolicy.check` refuses it up front (a 400 naming the request field);
* the client's network backend checks again the address it actually connects to, so a
  name that resolves to a public address when checked and a private one when connected
  (DNS rebinding) is still refused;
* :func:`fetch` follows redirects itself, each hop checked, and caps time and size.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from oasis.errors import InvalidRequestError

# A tool call's page fetch or MCP request should not hang a turn for long.
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_REDIRECTS = 5
MAX_BODY_BYTES = 5 * 1024 * 1024

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundError(Exception):
    """An outbound request that a tool could not make: refused by the policy, timed out,
    too large, or answered with an error. Tools report it on their item; it never reaches
    a client as an HTTP error of its own."""


@dataclass(frozen=True)
class UrlPolicy:
    """Where tools may connect: http(s) only, and public addresses unless the operator
    allows private ones (a local MCP server, an intranet search engine)."""

    allow_private: bool = False

    def allows(self, address: Address) -> bool:
        """Whether a connection to ``address`` is allowed."""
        return self.allow_private or address.is_global

    async def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be fetched (a phrase after the URL's name), or None."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            return "must be an http or https URL."
        if self.allow_private:
            return None
        for address in await _addresses(parts.hostname):
            if not self.allows(address):
                return (
                    "points at a private or loopback address, which this server does not "
                    "connect to (the operator may allow it with `allow_private_urls = true` "
                    "or OASIS_ALLOW_PRIVATE_URLS=1)."
                )
        return None

    async def check(self, url: str, *, param: str) -> None:
        """Raise a 400 naming ``param`` unless ``url`` may be fetched."""
        reason = await self.refusal(url)
        if reason is not None:
            raise InvalidRequestError(f"'{param}' {reason}", param=param, code="invalid_value")


async def _addresses(host: str) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []  # unresolvable: the request itself will fail, with the tool's error
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class RefusedAddress(httpcore.ConnectError):
    """The connect-time check refused every address a host resolved to."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that resolves each host itself and connects only to an address
    the policy allows: the address checked is the address connected to."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _addresses(host)
        allowed = [a for a in addresses if self.policy.allows(a)]
        if not allowed:
            if addresses:
                raise RefusedAddress(
                    f"refused to connect to {host} ({addresses[0]}): a private or loopback address"
                )
            raise httpcore.ConnectError(f"cannot resolve {host}")
        # TLS still verifies the certificate against ``host``: httpcore passes the
        # original name as server_hostname when it starts TLS on this stream.
        return await self.inner.connect_tcp(
            str(allowed[0]),
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("tools do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over :class:`GuardedBackend` (httpx takes no backend
    argument, so the connection pool is replaced with one that uses it)."""

    def __init__(self, policy: UrlPolicy) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(policy),
        )


def create_http_client(
    transport: httpx.AsyncBaseTransport | None = None, policy: UrlPolicy | None = None
) -> httpx.AsyncClient:
    """A client for tools' outbound requests. With ``policy``, every connection is checked
    against it (see :class:`GuardedBackend`); ``transport`` (tests) replaces the network."""
    if transport is None and policy is not None:
        transport = _GuardedTransport(policy)
    return httpx.AsyncClient(
        transport=transport, timeout=TIMEOUT, follow_redirects=False, trust_env=False
    )


@dataclass(frozen=True)
class Fetched:
    """A page as fetched: the URL it was finally read from (after redirects)."""

    url: str
    content_type: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(_charset(self.content_type), errors="replace")


def _charset(content_type: str) -> str:
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.lower() == "charset" and value:
            try:
                "".encode(value.strip('"'))
            except LookupError:
                break
            return value.strip('"')
    return "utf-8"


async def fetch(
    client: httpx.AsyncClient,
    policy: UrlPolicy,
    url: str,
    *,
    max_bytes: int = MAX_BODY_BYTES,
    timeout: float = 20.0,
) -> Fetched:
    """GET ``url`` through ``client``: redirects followed here, each hop checked by
    ``policy``; the body read up to ``max_bytes``; the whole fetch within ``timeout``
    seconds. Raises :class:`OutboundError` with a message fit to show the model."""
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(client, policy, url, max_bytes)
    except TimeoutError:
        raise OutboundError(f"{url}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise OutboundError(f"{url}: {exc or type(exc).__name__}") from exc


async def _fetch(client: httpx.AsyncClient, policy: UrlPolicy, url: str, max_bytes: int) -> Fetched:
    for _ in range(MAX_REDIRECTS + 1):
        reason = await policy.refusal(url)
        if reason is not None:
            raise OutboundError(f"{url} {reason}")
        async with client.stream("GET", url) as response:
            if response.is_redirect and "location" in response.headers:
                url = str(response.url.join(response.headers["location"]))
                continue
            if response.status_code >= 400:
                raise OutboundError(f"{url}: HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise OutboundError(f"{url}: larger than {max_bytes} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise OutboundError(f"{url}: larger than {max_bytes} bytes")
            return Fetched(url, response.headers.get("content-type", ""), bytes(body))
    raise OutboundError(f"{url}: more than {MAX_REDIRECTS} redirects")
