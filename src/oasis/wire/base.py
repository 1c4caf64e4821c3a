"""The base of every request model: permissive on unknown keys, which are logged."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from oasis.errors import InvalidRequestError

log = logging.getLogger("oasis.wire")

# Pydantic error types → the codes OpenAI's envelope uses for the same mistakes.
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


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 16:
        raise ValueError("metadata can have at most 16 keys")
    for key, item in value.items():
        if len(key) > 64 or len(item) > 512:
            raise ValueError("metadata keys are at most 64 and values 512 characters")
    return value


# OpenAI's metadata everywhere: at most 16 pairs; keys ≤ 64 and values ≤ 512 characters.
Metadata = Annotated[dict[str, str], AfterValidator(_check_metadata)]


# A timestamp key (``created``, ``created_at``, ``completed_at``, …) whose value pydantic
# wrote as an integral float. The key must follow ``{`` or ``,`` so that text inside a
# string (where a quote is escaped) never matches.
_FLOAT_TIMESTAMP = re.compile(r'(?<=[{,])("(?:created|[a-z_]+_at)":-?[0-9]+)\.0(?=[,}])')


def dump(model: BaseModel) -> str:
    """An OpenAI type as its wire JSON: only the fields we set, by their wire names.

    Timestamps are Unix seconds, integers on OpenAI's wire; the SDK types some of them as
    ``float`` (``Response.created_at``), and typed clients in other languages (.NET, Go,
    Rust's async-openai) fail to decode ``1741476542.0`` as an integer.
    """
    return _FLOAT_TIMESTAMP.sub(r"\1", model.model_dump_json(exclude_unset=True, by_alias=True))


def deleted(object_id: str, kind: str) -> dict[str, Any]:
    """What a delete answers where the ``openai`` package has no type for it (a
    container, a container's file, a response): ``{"id", "object": kind, "deleted"}``."""
    return {"id": object_id, "object": kind, "deleted": True}


def lone_surrogate_at(value: Any) -> str | None:
    """The JSON path of the first string (or key) in ``value`` that holds a lone UTF-16
    surrogate such as ``"\\ud800"`` (``"body"`` for the top level), or None.

    JSON escapes can spell such a string, but it is not Unicode text: it cannot be encoded
    as UTF-8, so stored or echoed it would break every later answer that carries it.
    """
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if not _encodes(node):
                return where or "body"
        elif isinstance(node, dict):
            for key, item in node.items():
                name = str(key)
                if not _encodes(name):
                    # Named in the error with the surrogate escaped, so the error encodes.
                    name = name.encode("utf-8", "backslashreplace").decode("ascii")
                    return f"{where}.{name}" if where else name
                stack.append((item, f"{where}.{name}" if where else name))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node))
    return None


def _encodes(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class WireModel(BaseModel):
    """A request body. Unknown fields are kept (newer SDKs send newer fields) and logged."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_lone_surrogates(cls, data: Any) -> Any:
        # Raised as our own error (pydantic lets it through) so that ``param`` is the full
        # path in the body: the outermost model runs this first, over the whole body.
        where = lone_surrogate_at(data)
        if where is not None:
            raise InvalidRequestError(
                f"Invalid value for '{where}': the string holds a lone UTF-16 surrogate, "
                "which is not valid Unicode text.",
                param=where,
                code="invalid_value",
            )
        return data

    @model_validator(mode="after")
    def _log_unknown(self) -> WireModel:
        if self.model_extra:
            log.debug(
                "%s: ignoring unknown fields %s", type(self).__name__, sorted(self.model_extra)
            )
        return self

    def field_given(self, name: str) -> bool:
        """True when the client sent ``name`` with a non-null value."""
        return name in self.model_fields_set and getattr(self, name) is not None


def json_path(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """``("body", "messages", 0, "content")`` → ``"messages[0].content"``."""
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "form"}:
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "tagged-union")):
            # pydantic adds union-member labels to locations (type names, and model class
            # names such as ``ResponseOutputText``); they are not JSON keys.
            if "[" in part or part in {"str", "list", "dict", "int", "float", "bool"}:
                continue
            if part[:1].isupper():
                continue
            out += f".{part}" if out else part
    return out or None


def form_fields(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Fold multipart items into a dict: ``a[]`` → list ``a``, ``a[k]`` → dict ``a``.

    Multipart has no arrays or objects: the SDK sends a list as repeated ``name[]`` fields
    and an object as ``name[key]`` fields; a repeated plain key is a list too.
    """
    out: dict[str, Any] = {}
    for key, value in items:
        if key.endswith("[]"):
            out.setdefault(key[:-2], [])
            if isinstance(out[key[:-2]], list):
                out[key[:-2]].append(value)
        elif "[" in key and key.endswith("]"):
            name, _, sub = key[:-1].partition("[")
            target = out.setdefault(name, {})
            if isinstance(target, dict):
                target[sub] = value
        elif key in out and isinstance(out[key], list):
            out[key].append(value)
        else:
            out[key] = value
    return out


def body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """A request model's validation errors located in the body, as FastAPI reports a body's
    (so a body that is not an object is "must be a JSON object", and params are named)."""
    return [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]


def validation_problem(error: Any, *, prefix: str | None = None) -> InvalidRequestError:
    """One pydantic error (a dict of ``ValidationError.errors()``) as a 400 naming its
    ``param``; ``prefix`` is where the validated value sits in the request body."""
    kind = str(error.get("type", ""))
    inner = json_path(tuple(error.get("loc", ())))
    if prefix and inner:
        param: str | None = prefix + ("" if inner.startswith("[") else ".") + inner
    else:
        param = prefix or inner
    code = _PYDANTIC_CODES.get(kind)
    if code is None and kind.endswith(("_type", "_parsing")):
        code = "invalid_type"
    if kind == "missing":
        message = f"Missing required parameter: '{param}'."
    elif kind == "extra_forbidden":
        message = f"Unknown parameter: '{param}'."
    elif code == "invalid_type":
        message = f"Invalid type for '{param}': {error.get('msg', 'wrong type')}."
    else:
        msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        message = f"Invalid value for '{param}': {msg}." if param else f"{msg}."
    return InvalidRequestError(message, param=param, code=code or "invalid_value")
