"""Multipart forms, read one way for every endpoint that takes uploads.

The scalar fields are folded back into a JSON-like body (``wire.base.form_fields``) and
validated by the endpoint's request model; the file parts are accepted only under the
names the endpoint expects, so a stray upload or a string where a file belongs is a 400
naming the field.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from oasis.errors import InvalidRequestError
from oasis.wire.base import body_errors, form_fields

M = TypeVar("M", bound=BaseModel)


async def read_form(request: Request, expected: str, *, max_files: int = 4) -> FormData:
    """The request's multipart form (file parts spooled to disk past 1 MB by Starlette);
    400 when the body is not multipart. ``expected`` says what the form should carry."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError(
            f"This endpoint takes multipart/form-data with {expected}.",
            code="invalid_content_type",
        )
    return await request.form(max_files=max_files, max_fields=64)


def split_form(
    form: FormData, files: Collection[str], *, ignored: Collection[str] = ()
) -> tuple[dict[str, Any], list[tuple[str, UploadFile]]]:
    """The form's scalar fields as one body, and its uploads under ``files`` in order.

    Uploads under ``ignored`` names are dropped (fields the SDK sends that we do not use).
    """
    scalars: list[tuple[str, str]] = []
    uploads: list[tuple[str, UploadFile]] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key in files:
                uploads.append((key, value))
            elif key not in ignored:
                raise InvalidRequestError(
                    f"Unexpected file in '{key}'.", param=key, code="unknown_parameter"
                )
        elif key in files:
            name = key.removesuffix("[]")
            raise InvalidRequestError(
                f"Invalid type for '{name}': expected a file upload, but got a string instead.",
                param=name,
                code="invalid_type",
            )
        else:
            scalars.append((key, value))
    return form_fields(scalars), uploads


def validate_fields(model: type[M], fields: Any) -> M:
    """``fields`` as ``model``; a validation error is the usual 400 naming its field."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(body_errors(exc)) from exc
