"""The one error tree of oasis.

Every failure a client can see is an :class:`OasisError`; one handler in ``api.errors``
turns it into the OpenAI envelope ``{"error": {message, type, param, code}}``::

    OasisError                       500 server_error (a bug in oasis)
    ├── InvalidRequestError          400 invalid_request_error (names ``param``)
    │   └── UnsupportedError         400 unsupported_parameter / unsupported_value
    ├── AuthenticationError          401
    ├── PermissionDeniedError        403
    ├── NotFoundError                404
    │   └── ModelNotFoundError       404 code model_not_found
    ├── RequestTimeoutError          408 a client too slow to send its request
    ├── PayloadTooLargeError         413
    ├── RateLimitError               429 (Retry-After)
    └── OverloadedError              503 (Retry-After)
        ├── ModelUnavailableError    503 a model's files or runtime cannot be loaded
        └── EngineUnreachableError   503 a remote engine is down or failed (x-should-retry)

Engines translate their runtime's exceptions into these at their boundary, so nothing
above an engine ever catches a llama.cpp or torch exception.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class OasisError(Exception):
    """Base of every error oasis reports to a client."""

    status_code: int = 500
    error_type: str = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def to_dict(self) -> dict[str, str | None]:
        """The inner object of the OpenAI error envelope."""
        return {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }


class InvalidRequestError(OasisError):
    status_code = 400
    error_type = "invalid_request_error"


class UnsupportedError(InvalidRequestError):
    """A parameter or value that the API defines but this model or server does not do."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message, param=param, code=code or "unsupported_value")


class AuthenticationError(OasisError):
    status_code = 401
    error_type = "invalid_request_error"


class PermissionDeniedError(OasisError):
    status_code = 403
    error_type = "permission_error"


class NotFoundError(OasisError):
    status_code = 404
    error_type = "invalid_request_error"


class ModelNotFoundError(NotFoundError):
    def __init__(self, model: str, hint: str | None = None) -> None:
        message = f"The model `{model}` does not exist or you do not have access to it."
        if hint:
            message = f"{message} {hint}"
        super().__init__(message, param="model", code="model_not_found")


class RequestTimeoutError(OasisError):
    """The client stopped sending its request (headers or body) for too long."""

    status_code = 408
    error_type = "invalid_request_error"


class PayloadTooLargeError(OasisError):
    status_code = 413
    error_type = "invalid_request_error"


class RateLimitError(OasisError):
    status_code = 429
    error_type = "requests"

    def __init__(
        self, message: str, *, retry_after: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            message,
            code="rate_limit_exceeded",
            headers={"Retry-After": str(retry_after), **(headers or {})},
        )


class OverloadedError(OasisError):
    status_code = 503
    error_type = "server_error"

    def __init__(self, message: str, *, retry_after: int = 1, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after)})


class PreemptedError(OverloadedError):
    """A rerunnable background job (a batch line) gave its model thread to a live request
    part-way; nothing of it was kept, and its request is to be run again from the start
    (see :func:`oasis.engines.worker.lower_priority`). Only the batch runner sees it."""

    def __init__(self) -> None:
        super().__init__("The job gave way to a live request; run it again.", code="preempted")


class ModelUnavailableError(OverloadedError):
    """The model is known but its files or runtime cannot be used (not a client mistake).

    The SDK retries 5xx, so this also carries ``x-should-retry: false``: a missing file will
    not appear by itself between retries.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, code="model_unavailable")
        self.headers = {"x-should-retry": "false"}


class EngineUnreachableError(OverloadedError):
    """A remote engine could not be reached, or answered with a server error.

    Unlike a missing file this may pass (a restart, another replica taking over), so the
    SDK is told to retry: ``x-should-retry: true``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, code="engine_unavailable")
        self.headers = {**self.headers, "x-should-retry": "true"}


def found(value: T | None, error: OasisError) -> T:
    """``value``, or ``error`` raised when it is None (a lookup that found nothing)."""
    if value is None:
        raise error
    return value
