"""The base of every request model: permissive on unknown keys, which are logged."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

log = logging.getLogger("oasis.wire")


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 16:
        raise ValueError("metadata can have at most 16 keys")
    for key, item in value.items():
        if len(key) > 64 or len(item) > 512:
            raise ValueError("metadata keys are at most 64 and values 512 characters")
    return value


# OpenAI's metadata everywhere: at most 16 pairs; keys ≤ 64 and values ≤ 512 characters.
Metadata = Annotated[dict[str, str], AfterValidator(_check_metadata)]


def dump(model: BaseModel) -> str:
    """An OpenAI type as its wire JSON: only the fields we set, by their wire names."""
    return model.model_dump_json(exclude_unset=True, by_alias=True)


class WireModel(BaseModel):
    """A request body. Unknown fields are kept (newer SDKs send newer fields) and logged."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

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
    and an object as ``name[key]`` fields (DIGEST §0.2); a repeated plain key is a list too.
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
