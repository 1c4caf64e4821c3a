"""Outbound traffic of tools: one injected HTTP client, and the policy for where it may go.

The app creates the client in its lifespan and closes it at shutdown; tools reach it
through their :class:`~oasis.tools.base.ToolContext`, so tests replace the outside world
at the transport (``create_app(settings, http_transport=httpx.MockTransport(...))``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from oasis.errors import InvalidRequestError

# A tool call's page fetch or MCP request should not hang a turn for long.
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def create_http_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one client every tool's outbound request goes through."""
    return httpx.AsyncClient(
        transport=transport, timeout=TIMEOUT, follow_redirects=False, trust_env=False
    )


@dataclass(frozen=True)
class UrlPolicy:
    """Where tools may connect: http(s) only, and public addresses unless the operator
    allows private ones (a local MCP server, an intranet search engine)."""

    allow_private: bool = False

    async def check(self, url: str, *, param: str) -> None:
        """Raise a 400 naming ``param`` unless ``url`` may be fetched."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise InvalidRequestError(
                f"'{param}' must be an http or https URL.", param=param, code="invalid_value"
            )
        if self.allow_private:
            return
        for address in await _addresses(parts.hostname):
            if not address.is_global:
                raise InvalidRequestError(
                    f"'{param}' points at a private or loopback address, which this server "
                    "does not connect to.",
                    param=param,
                    code="invalid_value",
                )


async def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    # The name is resolved here and again by the client when it connects; a name whose
    # answer changes in between (DNS rebinding) needs a resolving transport to close.
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []  # unresolvable: the request itself will fail, with the tool's error
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
