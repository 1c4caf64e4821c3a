"""The envelope of every cursor-paged list we return.

``{"object": "list", "data": [...], "first_id", "last_id", "has_more"}`` is what the SDK's
``SyncCursorPage`` reads. The resource-specific list types (``FileList``, ``BatchList``, …)
and :class:`CursorList` all have that shape; :func:`cursor_list` fills any of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

T = TypeVar("T")
L = TypeVar("L", bound=BaseModel)


class CursorList(BaseModel, Generic[T]):
    """A cursor page of ``T`` (for lists that have no type of their own)."""

    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


def _id_of(item: Any) -> str:
    return str(item["id"] if isinstance(item, Mapping) else item.id)


def cursor_list(kind: type[L], data: Sequence[Any], has_more: bool) -> L:
    """A ``kind`` list of ``data`` (objects or dicts with an ``id``), its first and last id
    named (None when it is empty)."""
    return kind(
        object="list",
        data=list(data),
        first_id=_id_of(data[0]) if data else None,
        last_id=_id_of(data[-1]) if data else None,
        has_more=has_more,
    )
