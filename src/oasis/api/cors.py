"""Cross-origin requests from browsers, for the origins the operator lists (``cors_origins``).

Starlette's middleware does the protocol; this narrows which request headers a preflight may
ask for to those the OpenAI SDKs send from a browser (the Node SDK with
``dangerouslyAllowBrowser``, and every SDK built by Stainless): ``authorization``,
``content-type``, the ``x-stainless-*`` telemetry headers and the ``openai-*`` ones
(organization, project, beta). Starlette matches header names exactly, and the
``x-stainless-*`` family grows with each SDK release, so these are glob patterns.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp

ALLOWED_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "openai-*",
    "user-agent",
    "x-stainless-*",
)
# Response headers a page may read: the SDKs read the request id and the rate limits.
EXPOSED_HEADERS = (
    "x-request-id",
    "retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)


def header_allowed(name: str) -> bool:
    """Whether a preflight may ask to send the request header ``name``."""
    name = name.strip().lower()
    return any(fnmatchcase(name, pattern) for pattern in ALLOWED_HEADERS)


class SdkCorsMiddleware(CORSMiddleware):
    """CORS for ``origins`` (``"*"`` for any), allowing the headers the SDKs send."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        # "*" headers makes Starlette echo what a preflight asks for; which may be asked
        # for is checked below, before that.
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=("GET", "POST", "DELETE", "OPTIONS"),
            allow_headers=("*",),
            expose_headers=EXPOSED_HEADERS,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        requested = request_headers.get("access-control-request-headers") or ""
        refused = [h.strip() for h in requested.split(",") if h.strip() and not header_allowed(h)]
        if refused:
            return PlainTextResponse(
                f"Disallowed CORS headers: {', '.join(refused)}", status_code=400
            )
        return super().preflight_response(request_headers)
