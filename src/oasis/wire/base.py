"""The base of every request model: permissive on unknown keys, which are logged."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

log = logging.getLogger("oasis.wire")


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
            # pydantic adds union-member labels to locations; they are not JSON keys.
            if "[" in part or part in {"str", "list", "dict", "int", "float", "bool"}:
                continue
            out += f".{part}" if out else part
    return out or None
