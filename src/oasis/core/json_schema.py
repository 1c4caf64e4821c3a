"""JSON schemas as decoding constraints: check a schema, and spell it as grammar.

Constrained decoding goes through llguidance: a schema becomes a ``%json { … }`` rule
inside a Lark grammar, which llguidance compiles into an exact token mask. A schema it
cannot enforce must never produce a silently unconstrained answer, so :func:`check_schema`
compiles the schema up front and turns any complaint into a 400 naming the keyword.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llguidance import LLMatcher

from oasis.errors import InvalidRequestError

# Compact JSON with the separators models write by themselves (Qwen's template uses
# exactly these); no free whitespace, so a small model cannot pad forever.
JSON_OPTIONS: dict[str, Any] = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}

_UNIMPLEMENTED = re.compile(r"Unimplemented keys: \[(.*?)\]")

# Deepest nesting of JSON objects and arrays a schema may have (a nested property costs two
# levels: the ``properties`` object and the property's schema). The schema checks recurse
# per level, so an unbounded depth would exhaust Python's stack; 64 leaves them room.
MAX_SCHEMA_DEPTH = 64


def _compile_options(strict: bool) -> dict[str, Any]:
    # Non-strict schemas (OpenAI's default for tools) may carry keywords we cannot enforce,
    # such as `uniqueItems`; we enforce everything else instead of failing the request.
    return {**JSON_OPTIONS, "lenient": not strict}


def check_schema(schema: Any, *, param: str, strict: bool) -> dict[str, Any]:
    """Return ``schema`` if it is a JSON schema the constrainer enforces; else raise a 400.

    ``param`` names the schema's place in the request body, for the error envelope.
    """
    if not isinstance(schema, dict):
        raise InvalidRequestError("The schema must be a JSON object.", param=param)
    if _depth(schema) > MAX_SCHEMA_DEPTH:
        raise InvalidRequestError(
            f"The schema is nested too deeply: at most {MAX_SCHEMA_DEPTH} levels of JSON "
            "objects and arrays are supported.",
            param=param,
            code="invalid_schema",
        )
    try:
        import jsonschema

        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise InvalidRequestError(
            f"Invalid schema at `{where}`: {exc.message}", param=param, code="invalid_schema"
        ) from exc
    try:
        options: Any = _compile_options(strict)  # a JsonCompileOptions TypedDict
        grammar = LLMatcher.grammar_from_json_schema(schema, overrides=options)
    except ValueError as exc:
        raise InvalidRequestError(f"Invalid schema: {exc}", param=param) from exc
    error = LLMatcher.validate_grammar(grammar)
    if error:
        raise _schema_error(error, param)
    return schema


def _depth(value: Any) -> int:
    """How deeply JSON objects and arrays nest in ``value`` (without recursing)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_SCHEMA_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def _schema_error(error: str, param: str) -> InvalidRequestError:
    found = _UNIMPLEMENTED.search(error)
    if found:
        keys = [k.strip().strip('"') for k in found.group(1).split(",") if k.strip()]
        names = ", ".join(f"`{k}`" for k in keys)
        return InvalidRequestError(
            f"The schema uses the keyword {names}, which constrained decoding does not "
            "support. Remove it, or set `strict` to false to have it ignored.",
            param=param,
            code="unsupported_schema_keyword",
        )
    first = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return InvalidRequestError(
        f"The schema cannot be used for constrained decoding: {first}",
        param=param,
        code="invalid_schema",
    )


# Longest string the decoder lets a model write where the schema sets no maxLength.
MAX_FREE_STRING = 200


def closed_objects(schema: Any) -> Any:
    """``schema`` narrowed so that a small model cannot run on until its budget ends.

    Objects get ``additionalProperties: false`` wherever they leave it unsaid (what
    OpenAI's strict mode asks of every schema anyway), and free strings get a
    ``maxLength`` of :data:`MAX_FREE_STRING` (a greedy 135M model otherwise repeats a
    word inside a string forever). Every output valid under the result is valid under
    ``schema``.
    """
    if isinstance(schema, list):
        return [closed_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed_objects(value) for key, value in schema.items()}
    open_keys = {"additionalProperties", "patternProperties", "unevaluatedProperties"}
    if "properties" in schema and not open_keys & schema.keys():
        out["additionalProperties"] = False
    kinds = schema.get("type")
    is_string = kinds == "string" or (isinstance(kinds, list) and "string" in kinds)
    bounded = {"maxLength", "enum", "const", "pattern", "format"} & schema.keys()
    if is_string and not bounded:
        out["maxLength"] = max(MAX_FREE_STRING, int(schema.get("minLength", 0)))
    return out


def json_rule(schema: dict[str, Any], *, strict: bool) -> str:
    """A Lark right-hand side matching JSON text valid against ``schema``."""
    with_options = {**closed_objects(schema), "x-guidance": _compile_options(strict)}
    return "%json " + json.dumps(with_options, ensure_ascii=False)


def lark_literal(text: str) -> str:
    """``text`` as a Lark string literal."""
    return json.dumps(text, ensure_ascii=False)


def compile_lark(lark: str, param: str) -> str:
    """An llguidance grammar from Lark source; errors become a 400 on ``param``."""
    grammar = LLMatcher.grammar_from_lark(lark)
    error = LLMatcher.validate_grammar(grammar)
    if error:
        raise _schema_error(error, param)
    return grammar
