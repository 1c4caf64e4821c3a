"""Request bodies of ``/v1/vector_stores…`` and the checks the schema cannot express.

Chunking strategies, attributes, filters and ``expires_after`` are checked by the
functions here (not by pydantic) so that a 400 names the exact ``param``, such as
``chunking_strategy.static.chunk_overlap_tokens``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from oasis.errors import InvalidRequestError
from oasis.retrieval.chunking import (
    AUTO_CHUNK_TOKENS,
    AUTO_OVERLAP_TOKENS,
    MAX_CHUNK_TOKENS,
    MIN_CHUNK_TOKENS,
)
from oasis.wire.base import Metadata, WireModel

MAX_ATTRIBUTES = 16


class VectorStoreCreateRequest(WireModel):
    name: str | None = None
    description: str | None = None
    file_ids: list[str] | None = Field(default=None, max_length=500)
    chunking_strategy: Any = None
    expires_after: Any = None
    metadata: Metadata | None = None


class VectorStoreUpdateRequest(WireModel):
    name: str | None = None
    expires_after: Any = None
    metadata: Metadata | None = None


class VectorStoreFileCreateRequest(WireModel):
    file_id: str = Field(min_length=1)
    attributes: Any = None
    chunking_strategy: Any = None


class VectorStoreFileUpdateRequest(WireModel):
    attributes: Any


class BatchFile(WireModel):
    file_id: str = Field(min_length=1)
    attributes: Any = None
    chunking_strategy: Any = None


class FileBatchCreateRequest(WireModel):
    file_ids: list[str] | None = Field(default=None, min_length=1, max_length=2000)
    files: list[BatchFile] | None = Field(default=None, min_length=1, max_length=2000)
    attributes: Any = None
    chunking_strategy: Any = None


class RankingOptions(WireModel):
    ranker: Literal["none", "auto", "default-2024-11-15"] | None = None
    score_threshold: float | None = Field(default=None, ge=0, le=1)


class SearchRequest(WireModel):
    query: str | list[str]
    rewrite_query: bool | None = None
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: Any = None
    ranking_options: RankingOptions | None = None


def _bad(param: str, message: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(f"Invalid value for '{param}': {message}.", param=param, code=code)


def check_chunking(value: Any, param: str = "chunking_strategy") -> dict[str, Any]:
    """The strategy as stored and shown: always ``static`` with the sizes used."""
    if value is None:
        value = {"type": "auto"}
    if not isinstance(value, dict):
        raise _bad(param, "expected an object")
    kind = value.get("type")
    if kind == "auto":
        size, overlap = AUTO_CHUNK_TOKENS, AUTO_OVERLAP_TOKENS
    elif kind == "static":
        static = value.get("static")
        if not isinstance(static, dict):
            raise _bad(f"{param}.static", "a static strategy needs a `static` object")
        given = static.get("max_chunk_size_tokens")
        overlap = static.get("chunk_overlap_tokens", AUTO_OVERLAP_TOKENS)
        where = f"{param}.static.max_chunk_size_tokens"
        if not isinstance(given, int) or isinstance(given, bool):
            raise _bad(where, "expected an integer", "invalid_type")
        size = given
        if not MIN_CHUNK_TOKENS <= size <= MAX_CHUNK_TOKENS:
            raise _bad(where, f"must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}")
        where = f"{param}.static.chunk_overlap_tokens"
        if not isinstance(overlap, int) or isinstance(overlap, bool):
            raise _bad(where, "expected an integer", "invalid_type")
        if not 0 <= overlap <= size // 2:
            raise _bad(where, f"must be between 0 and half of max_chunk_size_tokens ({size // 2})")
    else:
        raise _bad(f"{param}.type", "expected 'auto' or 'static'")
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap},
    }


def check_attributes(value: Any, param: str = "attributes") -> dict[str, Any] | None:
    """At most 16 keys of up to 64 characters; values strings (≤ 512), numbers, booleans."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(param, "expected an object")
    if len(value) > MAX_ATTRIBUTES:
        raise _bad(param, f"at most {MAX_ATTRIBUTES} attributes are allowed")
    for key, item in value.items():
        if len(key) > 64:
            raise _bad(param, f"the key {key[:16]!r}... is longer than 64 characters")
        if isinstance(item, str):
            if len(item) > 512:
                raise _bad(f"{param}.{key}", "string values are at most 512 characters")
        elif isinstance(item, float) and not math.isfinite(item):
            raise _bad(f"{param}.{key}", "numbers must be finite")
        elif not isinstance(item, (int, float, bool)):
            raise _bad(f"{param}.{key}", "values are strings, numbers or booleans")
    return dict(value)


def check_expires_after(value: Any, param: str = "expires_after") -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(param, "expected an object")
    if value.get("anchor") != "last_active_at":
        raise _bad(f"{param}.anchor", "the only anchor is 'last_active_at'")
    days = value.get("days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
        raise _bad(f"{param}.days", "expected an integer between 1 and 365")
    return {"anchor": "last_active_at", "days": days}
