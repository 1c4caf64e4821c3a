"""Structured outputs: response_format json_object / json_schema by constrained decoding.

A table of schemas, run on the default SmolLM2 and (when installed) Qwen2.5-Coder 0.5B:
every answer must parse and validate. Also the SDK's ``parse()``, streaming, and the 400s
for schemas the constrainer cannot enforce.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import httpx
import jsonschema
import pytest
from openai import OpenAI
from pydantic import BaseModel, Field

from oasis.models.assets import is_installed
from oasis.models.catalog import QWEN_CODER_05B

SMOL = "gpt-4o-mini"  # an alias of smollm2-135m-instruct
QWEN = QWEN_CODER_05B.id
MODELS = [
    SMOL,
    pytest.param(
        QWEN,
        marks=pytest.mark.skipif(
            not is_installed(QWEN_CODER_05B),
            reason=f"optional model; install with `oasis models install {QWEN}`",
        ),
    ),
]


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
        **extra,
    }


SCHEMAS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "flat",
        "Describe a person named Ana who is 31.",
        _obj({"name": {"type": "string"}, "age": {"type": "integer"}}),
    ),
    (
        "nested",
        "Give a city and its country.",
        _obj(
            {
                "city": _obj({"name": {"type": "string"}, "population": {"type": "integer"}}),
                "country": _obj({"name": {"type": "string"}, "code": {"type": "string"}}),
            }
        ),
    ),
    (
        "array_bounds",
        "List some fruits.",
        _obj(
            {"fruits": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4}}
        ),
    ),
    (
        "enum",
        "Classify the sentiment of: I love it!",
        _obj(
            {
                "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
                "confidence": {"type": "string", "enum": ["low", "high"]},
            }
        ),
    ),
    (
        "const",
        "Say which API version this is.",
        _obj({"version": {"const": "v1"}, "ok": {"type": "boolean"}}),
    ),
    (
        "integer_range",
        "Rate the movie Alien from 1 to 5.",
        _obj(
            {
                "stars": {"type": "integer", "minimum": 1, "maximum": 5},
                "year": {"type": "integer", "minimum": 1900, "maximum": 2030},
            }
        ),
    ),
    (
        "number_range",
        "Give a temperature and humidity reading.",
        _obj(
            {
                "celsius": {"type": "number", "minimum": -40, "maximum": 50},
                "humidity": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            }
        ),
    ),
    (
        "any_of",
        "Give an id for the user Bo.",
        _obj(
            {
                "id": {
                    "anyOf": [
                        {"type": "integer", "minimum": 0},
                        {"type": "string", "maxLength": 12},
                    ]
                }
            }
        ),
    ),
    (
        "defs_ref",
        "Give the shipping and billing address of a customer.",
        _obj(
            {"shipping": {"$ref": "#/$defs/address"}, "billing": {"$ref": "#/$defs/address"}},
            **{
                "$defs": {
                    "address": _obj({"street": {"type": "string"}, "zip": {"type": "string"}})
                }
            },
        ),
    ),
    (
        "optional",
        "Describe a book.",
        _obj(
            {
                "title": {"type": "string"},
                "subtitle": {"type": "string"},
                "pages": {"type": "integer"},
            },
            required=["title"],
        ),
    ),
    (
        "nullable",
        "Describe a pet; leave out anything unknown as null.",
        _obj(
            {
                "name": {"type": "string"},
                "owner": {"type": ["string", "null"]},
                "vaccinated": {"type": "boolean"},
            }
        ),
    ),
    (
        "array_of_objects",
        "List two steps to make tea.",
        _obj(
            {
                "steps": {
                    "type": "array",
                    "items": _obj(
                        {"n": {"type": "integer", "minimum": 1}, "text": {"type": "string"}}
                    ),
                    "minItems": 1,
                    "maxItems": 3,
                }
            }
        ),
    ),
    (
        "string_bounds",
        "Give a username and a two-letter country code.",
        _obj(
            {
                "username": {"type": "string", "minLength": 3, "maxLength": 16},
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
            }
        ),
    ),
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("case", "prompt", "schema"), SCHEMAS, ids=[c[0] for c in SCHEMAS])
def test_schema_table_always_valid(
    client: OpenAI, model: str, case: str, prompt: str, schema: dict[str, Any]
) -> None:
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": case, "schema": schema, "strict": True},
        },
        max_tokens=300,
        temperature=0,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    assert choice.message.content is not None
    jsonschema.validate(json.loads(choice.message.content), schema)


@pytest.mark.parametrize("model", MODELS)
def test_json_object_is_always_json(client: OpenAI, model: str) -> None:
    for seed in (1, 2):
        completion = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Tell me about the moon."}],
            response_format={"type": "json_object"},
            temperature=1.0,
            seed=seed,
            max_tokens=300,
        )
        content = completion.choices[0].message.content
        assert completion.choices[0].finish_reason == "stop", content
        assert isinstance(json.loads(content or ""), dict)


class Step(BaseModel):
    explanation: str = Field(max_length=80)
    output: str = Field(max_length=40)


class MathAnswer(BaseModel):
    steps: list[Step] = Field(min_length=1, max_length=3)
    final_answer: int
    confidence: Literal["low", "medium", "high"]


def test_sdk_parse_with_a_pydantic_model(client: OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=SMOL,
        messages=[{"role": "user", "content": "What is 8 times 7? Show your steps."}],
        response_format=MathAnswer,
        max_tokens=400,
        temperature=0,
    )
    message = completion.choices[0].message
    assert isinstance(message.parsed, MathAnswer)
    assert 1 <= len(message.parsed.steps) <= 3


def test_streamed_json_schema_is_valid_when_joined(client: OpenAI) -> None:
    schema = SCHEMAS[3][2]
    with client.chat.completions.stream(
        model=SMOL,
        messages=[{"role": "user", "content": SCHEMAS[3][1]}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "sentiment", "schema": schema, "strict": True},
        },
        max_tokens=100,
        temperature=0,
    ) as stream:
        pieces = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(pieces) > 1
    content = "".join(pieces)
    jsonschema.validate(json.loads(content), schema)
    assert final.choices[0].message.content == content


BAD_SCHEMAS: list[tuple[dict[str, Any], str, str]] = [
    (_obj({"x": {"not": {"type": "string"}}}), "not", "unsupported_schema_keyword"),
    (
        _obj({"x": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}),
        "uniqueItems",
        "unsupported_schema_keyword",
    ),
    ({"type": "object", "properties": {"x": {"type": "strng"}}}, "strng", "invalid_schema"),
    ({"type": "object", "required": "x"}, "required", "invalid_schema"),
    ({"$ref": "#/$defs/missing"}, "missing", "invalid_schema"),
]


@pytest.mark.parametrize(("schema", "word", "code"), BAD_SCHEMAS)
def test_bad_schemas_are_400_naming_the_problem(
    http: httpx.Client, schema: dict[str, Any], word: str, code: str
) -> None:
    body = {
        "model": SMOL,
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": schema, "strict": True},
        },
    }
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "response_format.json_schema.schema"
    assert error["code"] == code
    assert word in error["message"]


def test_bad_response_format_shapes_are_400(http: httpx.Client) -> None:
    for response_format, param in [
        ({"type": "xml"}, "response_format.type"),
        ({"type": "json_schema"}, "response_format"),
        (
            {"type": "json_schema", "json_schema": {"schema": {}}},
            "response_format.json_schema.name",
        ),
    ]:
        body = {
            "model": SMOL,
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": response_format,
        }
        response = http.post("/v1/chat/completions", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


def test_non_strict_schema_ignores_what_it_cannot_enforce(client: OpenAI) -> None:
    schema = _obj(
        {
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "uniqueItems": True,
                "maxItems": 3,
            },
        }
    )
    completion = client.chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Tag: red apple pie"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "tags", "schema": schema, "strict": False},
        },
        max_tokens=120,
        temperature=0,
    )
    data = json.loads(completion.choices[0].message.content or "")
    assert isinstance(data["tags"], list) and len(data["tags"]) <= 3
