"""Every error leaves as the OpenAI envelope ``{"error": {message, type, param, code}}``."""

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
from oasis.wire.base import json_path

log = logging.getLogger(__name__)

_PYDANTIC_CODES = {
    "missing": "missing_required_parameter",
    "greater_than_equal": "integer_below_min_value",
    "greater_than": "integer_below_min_value",
    "less_than_equal": "integer_above_max_value",
    "less_than": "integer_above_max_value",
    "too_short": "empty_array",
    "too_long": "array_above_max_length",
    "string_too_long": "string_above_max_length",
    "string_too_short": "string_below_min_length",
    "extra_forbidden": "unknown_parameter",
    "literal_error": "invalid_value",
    "enum": "invalid_value",
    "value_error": "invalid_value",
    "string_pattern_mismatch": "invalid_value",
}


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
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(exc: OasisError) -> JSONResponse:
    return JSONResponse(
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
    param = json_path(loc)
    code = _PYDANTIC_CODES.get(kind)
    if code is None and kind.endswith(("_type", "_parsing")):
        code = "invalid_type"
    if kind == "missing":
        message = f"Missing required parameter: '{param}'."
    elif kind == "extra_forbidden":
        message = f"Unknown parameter: '{param}'."
    elif code == "invalid_type":
        message = f"Invalid type for '{param}': {first.get('msg', 'wrong type')}."
    else:
        msg = str(first.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        message = f"Invalid value for '{param}': {msg}." if param else f"{msg}."
    return envelope(400, message, param=param, code=code or "invalid_value")


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


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return envelope(
        500,
        "The server had an error while processing your request. Sorry about that!",
        error_type="server_error",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OasisError, _oasis_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
