"""End to end: every number the schema makes an integer is a JSON integer on our wire.

OpenAI's schema types counts and ids as ``integer`` and timestamps as ``format: unixtime``
(Unix seconds, sent as integers). Typed clients in other languages (.NET, Go, Rust's
async-openai) decode those fields as integers and fail on ``1741476542.0``; Python's SDK
accepts either, so this reads the raw bytes. Each body and stream event of every endpoint
we serve is walked against the schema the served spec gives for that answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

SPEC = json.loads((Path(__file__).parent / "fuzz" / "openapi-served.json").read_text())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
CHAT = "smollm2-135m-instruct"

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int, float),
    "number": (int, float),
    "null": (type(None),),
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    """Whether ``value`` could be this union member: its JSON type and, for objects,
    its ``type`` / ``object`` tag (how OpenAI tells union members apart)."""
    schema = _resolve(schema)
    if "allOf" in schema:
        return all(_fits(value, part) for part in schema["allOf"])
    if "anyOf" in schema:
        return any(_fits(value, part) for part in schema["anyOf"])
    kind = schema.get("type")
    if isinstance(value, bool) and kind in {"integer", "number"}:
        return False
    if isinstance(kind, str) and not isinstance(value, _JSON_TYPES[kind]):
        return False
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for tag in ("type", "object"):
            allowed = _resolve(properties.get(tag, {})).get("enum")
            if tag in value and allowed is not None and value[tag] not in allowed:
                return False
    return True


def _integer_schema(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "integer" or schema.get("format") == "unixtime"


def non_integers(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Paths in ``value`` where the schema wants an integer and the JSON holds a float."""
    schema = _resolve(schema)
    found: list[str] = []
    if "allOf" in schema:
        for part in schema["allOf"]:
            found += non_integers(value, part, where)
    if "anyOf" in schema:
        members = [part for part in schema["anyOf"] if _fits(value, part)]
        # A value that fits several members is wrong only if it is wrong for each.
        reports = [non_integers(value, part, where) for part in members]
        if reports and all(reports):
            found += reports[0]
    if _integer_schema(schema) and isinstance(value, float):
        found.append(f"{where or '.'} = {value!r}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                found += non_integers(item, sub, f"{where}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += non_integers(item, schema["items"], f"{where}[{i}]")
    return found


def _answer_schema(path: str, method: str, media: str = "application/json") -> dict[str, Any]:
    operation = SPEC["paths"][path][method]
    return dict(operation["responses"]["200"]["content"][media]["schema"])


def test_the_walker_finds_a_float_where_the_schema_wants_an_integer() -> None:
    response = {"id": "resp_1", "object": "response", "created_at": 1.0, "output": []}
    usage = {"input_tokens": 2.0, "output_tokens": 1, "total_tokens": 3}
    body = {**response, "usage": usage, "completed_at": None}
    assert non_integers(body, {"$ref": "#/components/schemas/Response"}) == [
        ".created_at = 1.0",
        ".usage.input_tokens = 2.0",
    ]


class Collected:
    """What one endpoint answered, with the spec's schema for it."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, Any, dict[str, Any]]] = []

    def json(self, label: str, answer: httpx.Response, schema: dict[str, Any]) -> Any:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        self.bodies.append((label, body, schema))
        return body

    def stream(self, label: str, answer: httpx.Response, schema: dict[str, Any]) -> None:
        assert answer.status_code == 200, answer.text
        for frame in answer.text.split("\n\n"):
            lines = frame.split("\n")
            data = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
            if data and data[0] != "[DONE]":
                event = json.loads(data[0])
                self.bodies.append((f"{label} {event.get('type', 'chunk')}", event, schema))


@pytest.fixture(scope="module")
def answers(http: httpx.Client) -> Collected:
    got = Collected()
    short = {"model": CHAT, "max_output_tokens": 16, "temperature": 0}
    response = got.json(
        "POST /responses",
        http.post("/v1/responses", json={**short, "input": "Say hi."}),
        _answer_schema("/responses", "post"),
    )
    got.stream(
        "POST /responses stream",
        http.post("/v1/responses", json={**short, "input": "Say hi.", "stream": True}),
        _answer_schema("/responses", "post", "text/event-stream"),
    )
    got.json(
        "GET /responses/{id}",
        http.get(f"/v1/responses/{response['id']}"),
        _answer_schema("/responses/{response_id}", "get"),
    )
    got.json(
        "GET /responses/{id}/input_items",
        http.get(f"/v1/responses/{response['id']}/input_items"),
        _answer_schema("/responses/{response_id}/input_items", "get"),
    )
    got.json(
        "POST /responses/input_tokens",
        http.post("/v1/responses/input_tokens", json={"model": CHAT, "input": "Say hi."}),
        _answer_schema("/responses/input_tokens", "post"),
    )
    chat = {"model": CHAT, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}
    stored = got.json(
        "POST /chat/completions",
        http.post("/v1/chat/completions", json={**chat, "store": True}),
        _answer_schema("/chat/completions", "post"),
    )
    got.json(
        "GET /chat/completions",
        http.get("/v1/chat/completions", params={"limit": 5}),
        _answer_schema("/chat/completions", "get"),
    )
    got.json(
        "GET /chat/completions/{id}",
        http.get(f"/v1/chat/completions/{stored['id']}"),
        _answer_schema("/chat/completions/{completion_id}", "get"),
    )
    got.stream(
        "POST /chat/completions stream",
        http.post(
            "/v1/chat/completions",
            json={**chat, "stream": True, "stream_options": {"include_usage": True}},
        ),
        _answer_schema("/chat/completions", "post", "text/event-stream"),
    )
    completion = {"model": CHAT, "prompt": "Once", "max_tokens": 8, "logprobs": 2}
    got.json(
        "POST /completions",
        http.post("/v1/completions", json=completion),
        _answer_schema("/completions", "post"),
    )
    got.stream(
        "POST /completions stream",
        http.post("/v1/completions", json={**completion, "stream": True}),
        _answer_schema("/completions", "post"),
    )
    got.json(
        "POST /embeddings",
        http.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": ["a", "b"]}),
        _answer_schema("/embeddings", "post"),
    )
    got.json("GET /models", http.get("/v1/models"), _answer_schema("/models", "get"))
    got.json(
        "GET /models/{id}", http.get(f"/v1/models/{CHAT}"), _answer_schema("/models/{model}", "get")
    )
    conversation = got.json(
        "POST /conversations",
        http.post(
            "/v1/conversations",
            json={"items": [{"type": "message", "role": "user", "content": "Hello"}]},
        ),
        _answer_schema("/conversations", "post"),
    )
    got.json(
        "GET /conversations/{id}/items",
        http.get(f"/v1/conversations/{conversation['id']}/items"),
        _answer_schema("/conversations/{conversation_id}/items", "get"),
    )
    return got


def test_every_integer_of_the_schema_is_an_integer_on_the_wire(answers: Collected) -> None:
    labels = {label.split(" ")[1] for label, _, _ in answers.bodies}
    assert len(labels) >= 10  # every endpoint above answered
    wrong = [
        f"{label}: {place}"
        for label, body, schema in answers.bodies
        for place in non_integers(body, schema)
    ]
    assert wrong == []


def test_timestamps_are_integers_in_stored_and_streamed_responses(answers: Collected) -> None:
    # The fields that were floats before, named so a regression reads plainly.
    stamps = [
        (label, body.get("response", body))
        for label, body, _ in answers.bodies
        if "responses" in label and ("response" in body or body.get("object") == "response")
    ]
    assert stamps
    for label, response in stamps:
        assert type(response["created_at"]) is int, label
        assert response.get("completed_at") is None or type(response["completed_at"]) is int
