"""Attribute filters (``ComparisonFilter`` / ``CompoundFilter``) checked and turned into SQL.

A filter selects vector-store files by their ``attributes`` in the database (SQLite
``json_extract``, PostgreSQL ``->>``), before any chunk is scored. Values compare only
with attributes of the same JSON type (a string never equals a number). A file without
the key matches no comparison except ``ne`` and ``nin``, which it always matches.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, case, cast, false, func, literal, not_, or_, true
from sqlalchemy.types import Float

from oasis.errors import InvalidRequestError

COMPARISONS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"})
COMPOUNDS = frozenset({"and", "or"})
Scalar = str | int | float | bool


def _bad(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid value for '{param}': {message}.", param=param, code="invalid_value"
    )


def check_filter(value: Any, param: str) -> dict[str, Any]:
    """``value`` as a valid filter; a 400 naming the exact path of the first problem."""
    if not isinstance(value, dict):
        raise _bad(param, "a filter is an object")
    kind = value.get("type", "eq")
    if kind in COMPOUNDS:
        extra = set(value) - {"type", "filters"}
        if extra:
            raise _bad(f"{param}.{sorted(extra)[0]}", "compound filters take only `filters`")
        parts = value.get("filters")
        if not isinstance(parts, list):
            raise _bad(f"{param}.filters", "expected an array of filters")
        return {
            "type": kind,
            "filters": [check_filter(p, f"{param}.filters[{i}]") for i, p in enumerate(parts)],
        }
    if kind not in COMPARISONS:
        raise _bad(f"{param}.type", f"{kind!r} is not one of {sorted(COMPARISONS | COMPOUNDS)}")
    extra = set(value) - {"type", "key", "value"}
    if extra:
        raise _bad(f"{param}.{sorted(extra)[0]}", "comparison filters take `key` and `value`")
    key = value.get("key")
    if not isinstance(key, str) or not key:
        raise _bad(f"{param}.key", "expected a non-empty string")
    target = value.get("value")
    if kind in {"in", "nin"}:
        if not isinstance(target, list) or not all(_scalar(v) for v in target):
            raise _bad(f"{param}.value", f"`{kind}` takes an array of strings and numbers")
    elif not _scalar(target):
        raise _bad(f"{param}.value", "expected a string, number or boolean")
    return {"type": kind, "key": key, "value": target}


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and value == value  # no NaN


def to_sql(spec: dict[str, Any], column: Any, dialect: str) -> ColumnElement[bool]:
    """The SQL condition of a checked filter over the JSON ``column`` of attributes."""
    kind = spec["type"]
    if kind in COMPOUNDS:
        parts = [to_sql(p, column, dialect) for p in spec["filters"]]
        if not parts:
            return true() if kind == "and" else false()
        return and_(*parts) if kind == "and" else or_(*parts)
    key, value = spec["key"], spec["value"]
    if kind in {"in", "nin"}:
        found = or_(false(), *(_compare("eq", key, v, column, dialect) for v in value))
        return found if kind == "in" else _never(found)
    if kind == "ne":
        return _never(_compare("eq", key, value, column, dialect))
    return _compare(kind, key, value, column, dialect)


def _never(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    # A missing key makes the comparison NULL, and NOT NULL is NULL too: count it false.
    return not_(func.coalesce(condition, false()))


def _compare(op: str, key: str, value: Scalar, column: Any, dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        kind = func.json_typeof(column.op("->")(key))
        text = column.op("->>")(key)
        if isinstance(value, bool):
            return and_(kind == "boolean", text == ("true" if value else "false"))
        if isinstance(value, str):
            return and_(kind == "string", _op(op, text, value))
        number = case((kind == "number", cast(text, Float)), else_=None)
        return _op(op, number, float(value))
    path = literal('$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"')
    kind = func.json_type(column, path)
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    extracted = func.json_extract(column, path)
    if isinstance(value, str):
        return and_(kind == "text", _op(op, extracted, value))
    return and_(kind.in_(["integer", "real"]), _op(op, extracted, value))


def _op(op: str, left: Any, right: Any) -> ColumnElement[bool]:
    if op == "eq":
        return left == right  # type: ignore[no-any-return]
    if op == "gt":
        return left > right  # type: ignore[no-any-return]
    if op == "gte":
        return left >= right  # type: ignore[no-any-return]
    if op == "lt":
        return left < right  # type: ignore[no-any-return]
    return left <= right  # type: ignore[no-any-return]
