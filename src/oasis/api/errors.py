"""Every error leaves as the OpenAI envelope ``{"error": {message, type, param, code}}``.

The envelope is built here and only here: handlers, middleware, the header-deadline
protocol and SSE error frames all encode it with :func:`error_json`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oasis.errors import OasisError
from oasis.wire.base import validation_problem

log = logging.getLogger(__name__)


def encode_json(content: Any) -> bytes:
    """``content`` as compact JSON. Always encodes: an error message may echo client text,
    even a lone surrogate (which UTF-8 cannot carry); such a body gets ``\\u`` escapes."""
    try:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def error_json(exc: OasisError) -> bytes:
    """The envelope of ``exc`` as bytes, for senders below FastAPI (middleware, SSE)."""
    return encode_json({"error": exc.to_dict()})


class EnvelopeResponse(JSONResponse):
    """A JSON response encoded by :func:`encode_json`."""

    def render(self, content: Any) -> bytes:
        return encode_json(content)


def envelope(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return EnvelopeResponse(body, status_code=status, headers=headers)


def error_response(exc: OasisError) -> JSONResponse:
    return EnvelopeResponse(
        {"error": exc.to_dict()}, status_code=exc.status_code, headers=exc.headers or None
    )


def validation_error_response(errors: Sequence[Any]) -> JSONResponse:
    """The first pydantic/FastAPI validation error as a 400 naming its ``param``."""
    first = errors[0] if errors else {"loc": (), "msg": "Invalid request", "type": "invalid"}
    kind = str(first.get("type", ""))
    loc = tuple(first.get("loc", ()))
    if kind in {"json_invalid", "json_type"} or (kind == "missing" and loc == ("body",)):
        return envelope(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
        )
    if loc == ("body",):
        return envelope(400, "The request body must be a JSON object.", code="invalid_type")
    return error_response(validation_problem(first))


async def _oasis_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OasisError)
    if exc.status_code >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_error_response(exc.errors())


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return envelope(
            404,
            f"Invalid URL ({request.method} {request.url.path})",
            code="unknown_url",
        )
    if exc.status_code == 405:
        return envelope(
            405,
            f"Method {request.method} is not allowed on {request.url.path}.",
            code="method_not_allowed",
        )
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    return envelope(exc.status_code, detail, headers=getattr(exc, "headers", None))


def server_error_response() -> JSONResponse:
    """The 500 of an error that is none of ours (a bug): no detail leaves the server."""
    return envelope(
        500,
        "The server had an error while processing your request. Sorry about that!",
        error_type="server_error",
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return server_error_response()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OasisError, _oasis_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
