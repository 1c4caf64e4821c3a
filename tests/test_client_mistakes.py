"""A client's mistake is a 400 naming its ``param``, never a 5xx, and never stored.

Items are checked against the SDK's own types before anything is written, the same way
for Responses input and for conversation items: what is stored must list and replay under
``OpenAI(_strict_response_validation=True)``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai import OpenAI

from oasis.api.errors import error_response
from oasis.errors import InvalidRequestError
from tests.responses_helpers import MODEL

USER = {"type": "message", "role": "user", "content": "Hello"}

# (a bad item, the field its error names)
BAD_ITEMS: list[tuple[dict[str, Any], str]] = [
    ({**USER, "status": "bogus"}, "status"),
    ({**USER, "id": 123}, "id"),
    ({"type": "message", "role": "assistant", "content": "Hi", "phase": {}}, "phase"),
    (
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "x", "annotations": [{"type": "url_citation"}]}
            ],
        },
        "content[0].annotations[0]",
    ),
    (
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "status": 7},
        "status",
    ),
    ({"type": "reasoning", "summary": [{"type": "summary_text"}]}, "summary[0].text"),
    ({"type": "message", "role": {"a": 1}, "content": "x"}, "role"),
    ({"type": "message", "role": ["user"], "content": "x"}, "role"),
    (
        {"type": "message", "role": "user", "content": [{"type": {"a": 1}, "text": "x"}]},
        "content[0].type",
    ),
    ({"type": "message", "role": "user", "content": [{"type": ["input_text"]}]}, "content[0].type"),
    ({"type": ["message"], "role": "user", "content": "x"}, "type"),
]


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize(("item", "field"), BAD_ITEMS, ids=[f for _, f in BAD_ITEMS])
def test_a_bad_item_is_a_400_and_nothing_is_stored(
    http: httpx.Client, client: OpenAI, item: dict[str, Any], field: str
) -> None:
    items = [USER, USER, item]
    # A new conversation with a bad third item is not created (nothing to list later).
    error = _error(http.post("/v1/conversations", json={"items": items}))
    assert error["param"].startswith(f"items[2].{field}"), error
    # Added to an existing conversation: the good items before it are not added either.
    conversation = client.conversations.create(items=[USER])
    error = _error(http.post(f"/v1/conversations/{conversation.id}/items", json={"items": items}))
    assert error["param"].startswith(f"items[2].{field}"), error
    assert len(client.conversations.items.list(conversation.id).data) == 1
    # As Responses input: refused before any generation, so nothing is stored.
    error = _error(http.post("/v1/responses", json={"model": MODEL, "input": items}))
    assert error["param"].startswith(f"input[2].{field}"), error


def test_valid_items_are_stored_as_given_and_list_strictly(client: OpenAI) -> None:
    given: list[Any] = [
        {**USER, "id": "msg_given", "status": "incomplete"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []}],
            "phase": "commentary",
            "status": "completed",
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {
            "type": "function_call_output",
            "call_id": "c1",
            "output": [{"type": "input_text", "text": "42"}],
        },
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thought"}]},
    ]
    conversation = client.conversations.create(items=given)
    listed = client.conversations.items.list(conversation.id, order="asc").data
    assert [item.type for item in listed] == [i["type"] for i in given]
    assert listed[0].id == "msg_given" and listed[0].status == "incomplete"
    assert listed[1].phase == "commentary"  # type: ignore[union-attr]


@pytest.mark.slow
def test_given_item_fields_replay_through_input_items(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input=[
            {"type": "message", "role": "user", "content": "Say hi.", "id": "msg_mine"},
            {"type": "message", "role": "assistant", "content": "Hi", "phase": "final_answer"},
            {"type": "message", "role": "user", "content": "Again.", "status": "incomplete"},
        ],
        max_output_tokens=16,
        temperature=0,
    )
    items = client.responses.input_items.list(response.id, order="asc").data
    assert [getattr(item, "role", None) for item in items] == ["user", "assistant", "user"]
    assert items[0].id == "msg_mine"
    assert items[1].phase == "final_answer"  # type: ignore[union-attr]
    assert items[2].status == "incomplete"  # type: ignore[union-attr]


def _raw(http: httpx.Client, path: str, body: str) -> httpx.Response:
    return http.post(path, content=body, headers={"Content-Type": "application/json"})


def test_a_lone_surrogate_is_a_400_naming_where_it_is(http: httpx.Client, client: OpenAI) -> None:
    # An error message that would echo the model name used to fail to encode (500).
    for path, body in [
        ("/v1/responses", '{"model": "\\ud800", "input": "x"}'),
        ("/v1/chat/completions", '{"model": "\\ud800", "messages": []}'),
    ]:
        assert _error(_raw(http, path, body))["param"] == "model"
    error = _error(_raw(http, "/v1/embeddings", '{"model": "m", "input": ["ok", "a\\udfff"]}'))
    assert error["param"] == "input[1]"
    # Stored, such text would break every later list of the conversation.
    conversation = client.conversations.create(items=[USER])
    body = '{"items": [{"type": "message", "role": "user", "content": "\\ud800"}]}'
    error = _error(_raw(http, f"/v1/conversations/{conversation.id}/items", body))
    assert error["param"] == "items[0].content"
    error = _error(_raw(http, "/v1/conversations", '{"metadata": {"\\udc00": "v"}}'))
    assert error["param"] == "metadata.\\udc00"
    assert len(client.conversations.items.list(conversation.id).data) == 1


def test_an_error_that_echoes_a_lone_surrogate_still_encodes() -> None:
    response = error_response(InvalidRequestError("No model named '\ud800'.", param="model"))
    assert json.loads(response.body)["error"]["message"] == "No model named '\ud800'."


def test_json_nested_past_the_parser_is_a_400(http: httpx.Client) -> None:
    deep = '{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}"
    for path in ("/v1/images/edits", "/v1/images/generations", "/v1/chat/completions"):
        response = _raw(http, path, deep)
        assert response.status_code == 400, (path, response.text)
        assert "error" in response.json()


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


def test_deeply_nested_schemas_are_a_400(http: httpx.Client) -> None:
    deep = _nested(100)
    messages = [{"role": "user", "content": "x"}]
    cases = [
        (
            "/v1/chat/completions",
            {
                "model": MODEL,
                "messages": messages,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "deep", "schema": deep},
                },
            },
            "response_format.json_schema.schema",
        ),
        (
            "/v1/chat/completions",
            {
                "model": MODEL,
                "messages": messages,
                "tools": [{"type": "function", "function": {"name": "f", "parameters": deep}}],
            },
            "tools[0].function.parameters",
        ),
        (
            "/v1/responses",
            {
                "model": MODEL,
                "input": "x",
                "text": {"format": {"type": "json_schema", "name": "deep", "schema": deep}},
            },
            "text.format.schema",
        ),
        (
            "/v1/responses",
            {
                "model": MODEL,
                "input": "x",
                "tools": [{"type": "function", "name": "f", "parameters": deep}],
            },
            "tools[0].parameters",
        ),
    ]
    for path, body, param in cases:
        error = _error(http.post(path, json=body))
        assert (error["param"], error["code"]) == (param, "invalid_schema")


def test_a_schema_nested_within_the_limit_is_accepted(http: httpx.Client) -> None:
    # Counting only: the schema is checked and compiled, nothing is generated.
    text = {"format": {"type": "json_schema", "name": "nested", "schema": _nested(20)}}
    response = http.post(
        "/v1/responses/input_tokens", json={"model": MODEL, "input": "x", "text": text}
    )
    assert response.status_code == 200, response.text
