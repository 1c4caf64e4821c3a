"""``/v1/responses`` without streaming: create, store, chain, retrieve, delete, input items."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai import OpenAI

from tests.logprob_helpers import spelled
from tests.responses_helpers import MODEL

pytestmark = pytest.mark.slow


def test_create_returns_a_complete_response(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input="Say hello.",
        instructions="You are terse.",
        max_output_tokens=40,
        temperature=0.5,
        top_p=0.9,
        metadata={"suite": "responses"},
        user="u-1",
        safety_identifier="s-1",
    )
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status in {"completed", "incomplete"}
    assert response.model == MODEL
    assert response.instructions == "You are terse."
    assert response.metadata == {"suite": "responses"}
    assert (response.temperature, response.top_p) == (0.5, 0.9)
    assert response.user == "u-1" and response.safety_identifier == "s-1"
    assert response.store is True and response.background is False
    assert response.text is not None and response.text.format.type == "text"
    assert response.output_text
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant"
    usage = response.usage
    assert usage is not None
    assert usage.output_tokens <= 40
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert 0 <= usage.input_tokens_details.cached_tokens < usage.input_tokens
    assert usage.input_tokens_details.cache_write_tokens == 0


def test_a_chained_turn_reuses_the_cached_prefix(client: OpenAI) -> None:
    first = client.responses.create(
        model=MODEL, input="Name a colour.", max_output_tokens=8, temperature=0
    )
    second = client.responses.create(
        model=MODEL,
        input="And another one?",
        previous_response_id=first.id,
        max_output_tokens=8,
        temperature=0,
    )
    assert first.usage is not None and second.usage is not None
    # The first turn's prompt is still in the engine's cache (the suite runs one request at a
    # time, so nothing else used the model in between): the second turn is built on it.
    cached = second.usage.input_tokens_details.cached_tokens
    assert first.usage.input_tokens <= cached < second.usage.input_tokens


def test_usage_is_exact(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Hi", max_output_tokens=16)
    counted = client.responses.input_tokens.count(model=MODEL, input="Hi")
    assert response.usage is not None
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens == response.usage.input_tokens > 0


def test_input_tokens_without_a_model(client: OpenAI) -> None:
    # `model` is optional on this endpoint: the server's default chat model is counted,
    # or, for a chained turn, the previous response's model.
    named = client.responses.input_tokens.count(model="smollm2-135m-instruct", input="Hi")
    unnamed = client.responses.input_tokens.count(input="Hi")
    assert unnamed.object == "response.input_tokens"
    assert unnamed.input_tokens == named.input_tokens > 0
    first = client.responses.create(model=MODEL, input="Hi", max_output_tokens=4)
    chained = client.responses.input_tokens.count(input="Again", previous_response_id=first.id)
    same = client.responses.input_tokens.count(
        model=MODEL, input="Again", previous_response_id=first.id
    )
    assert chained.input_tokens == same.input_tokens > named.input_tokens


def test_max_output_tokens_gives_incomplete(client: OpenAI) -> None:
    # Greedy: it runs past 16 tokens every time, where a sampled answer could end early.
    response = client.responses.create(
        model=MODEL,
        input="Write a very long essay about the sea.",
        max_output_tokens=16,
        temperature=0,
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 16
    assert response.completed_at is None
    assert response.output[0].status == "incomplete"


def test_retrieve_delete_and_404(client: OpenAI, http: httpx.Client) -> None:
    created = client.responses.create(model=MODEL, input="Hi", max_output_tokens=16)
    fetched = client.responses.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()
    raw = http.delete(f"/v1/responses/{created.id}")
    assert raw.status_code == 200 and raw.json()["deleted"] is True
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve(created.id)
    assert "not found" in err.value.message
    gone = http.get(f"/v1/responses/{created.id}")
    assert gone.status_code == 404
    assert set(gone.json()["error"]) == {"message", "type", "param", "code"}
    assert gone.json()["error"]["param"] == "response_id"
    assert http.delete(f"/v1/responses/{created.id}").status_code == 404
    assert http.get("/v1/responses/resp_nope/input_items").status_code == 404


def test_store_false_is_not_retrievable_nor_chainable(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Hi", max_output_tokens=16, store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(
            model=MODEL, input="Again", previous_response_id=response.id, max_output_tokens=16
        )
    assert err.value.code == "previous_response_not_found"
    assert err.value.param == "previous_response_id"


def test_chain_input_items_list_the_whole_context(client: OpenAI) -> None:
    first = client.responses.create(
        model=MODEL, input="My name is Ada.", instructions="Be brief.", max_output_tokens=16
    )
    second = client.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first.id, max_output_tokens=16
    )
    third = client.responses.create(
        model=MODEL, input="Thanks.", previous_response_id=second.id, max_output_tokens=16
    )
    assert third.previous_response_id == second.id
    assert third.instructions is None  # instructions are not inherited
    items = client.responses.input_items.list(third.id, order="asc").data
    kinds = [(i.type, getattr(i, "role", None)) for i in items]
    assert kinds == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    assert items[1].id == first.output[0].id
    assert items[3].id == second.output[0].id
    texts = [i.content[0].text for i in items if i.role == "user"]
    assert texts == ["My name is Ada.", "What is my name?", "Thanks."]
    # The chained prompt holds the whole history: more input tokens each turn.
    assert first.usage and second.usage and third.usage
    assert first.usage.input_tokens < second.usage.input_tokens < third.usage.input_tokens
    # Instructions of the first turn are not part of later prompts.
    without = client.responses.input_tokens.count(
        model=MODEL, input="Thanks.", previous_response_id=second.id
    )
    assert without.input_tokens == third.usage.input_tokens


def test_input_items_paging_and_order(client: OpenAI) -> None:
    inputs = [{"role": "user", "content": f"line {i}"} for i in range(5)]
    response = client.responses.create(model=MODEL, input=inputs, max_output_tokens=16)
    desc = client.responses.input_items.list(response.id)
    assert [i.content[0].text for i in desc.data] == [f"line {i}" for i in range(4, -1, -1)]
    page = client.responses.input_items.list(response.id, limit=2, order="asc")
    assert page.has_more is True and len(page.data) == 2
    everything = list(client.responses.input_items.list(response.id, limit=2, order="asc"))
    assert [i.content[0].text for i in everything] == [f"line {i}" for i in range(5)]


def test_item_list_input_with_round_tripped_items(client: OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="Hello!", max_output_tokens=16)
    follow = client.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Hello!"}]},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "message", "role": "user", "content": "And now?"},
        ],
        max_output_tokens=16,
    )
    items = client.responses.input_items.list(follow.id, order="asc").data
    assert items[1].id == first.output[0].id
    by_ref = client.responses.create(
        model=MODEL,
        input=[
            {"type": "item_reference", "id": first.output[0].id},
            {"role": "user", "content": "ok"},
        ],
        max_output_tokens=16,
    )
    items = client.responses.input_items.list(by_ref.id, order="asc").data
    assert items[0].id == first.output[0].id and items[0].role == "assistant"


def test_text_formats(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 12},
            "population": {"type": "integer"},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=MODEL,
        input="Name a big city and its population as JSON.",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
        max_output_tokens=100,
        # Greedy: a sampled integer or string may ramble past the budget (then "incomplete").
        temperature=0,
    )
    assert response.status == "completed"
    assert response.text is not None and response.text.format.type == "json_schema"
    data = json.loads(response.output_text)
    assert set(data) == {"city", "population"} and isinstance(data["population"], int)
    loose = client.responses.create(
        model=MODEL,
        input="Reply with an empty JSON object.",
        text={"format": {"type": "json_object"}},
        max_output_tokens=100,
        temperature=0,
    )
    if loose.status == "completed":
        assert isinstance(json.loads(loose.output_text), dict)
    else:  # a tiny model may ramble past the budget; the prefix must still be JSON-ish
        assert loose.output_text.lstrip().startswith("{")


def test_logprobs_include(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input="Hi",
        max_output_tokens=16,
        top_logprobs=2,
        include=["message.output_text.logprobs"],
        temperature=0,  # a sampled end-of-text as the first token would leave no entries
    )
    part = response.output[0].content[0]
    assert part.type == "output_text" and part.logprobs
    assert spelled(lp.bytes for lp in part.logprobs) == part.text
    assert all(len(lp.top_logprobs) == 2 for lp in part.logprobs)
    plain = client.responses.create(model=MODEL, input="Hi", max_output_tokens=16)
    assert plain.output[0].content[0].logprobs == []


def test_reasoning_param_accepted_and_truncation_auto(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input="Hi",
        reasoning={"effort": "low"},
        truncation="auto",
        max_output_tokens=16,
    )
    assert response.reasoning is not None and response.reasoning.effort == "low"
    assert response.truncation == "auto"


def test_truncation(client: OpenAI, http: httpx.Client) -> None:
    # One turn past the context window (8192 tokens) then a short one: "auto" drops the
    # oldest turn, which leaves a short prompt (quick to run on a small machine).
    long_turns = [{"role": "user", "content": "word " * 9000}]
    body = {"model": MODEL, "input": [*long_turns, {"role": "user", "content": "Hi"}]}
    refused = http.post("/v1/responses", json={**body, "max_output_tokens": 16})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "context_length_exceeded"
    assert refused.json()["error"]["param"] == "input"
    fitted = client.responses.create(**body, truncation="auto", max_output_tokens=16)
    assert fitted.usage is not None and fitted.status in {"completed", "incomplete"}
    assert fitted.usage.input_tokens < 100


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": MODEL}, "input"),
        ({"model": MODEL, "input": "hi", "temperature": 3}, "temperature"),
        ({"model": MODEL, "input": "hi", "top_p": "x"}, "top_p"),
        ({"model": MODEL, "input": "hi", "metadata": {"k": "v" * 600}}, "metadata"),
        ({"model": MODEL, "input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
        ({"model": MODEL, "input": [{"role": "user"}]}, "input[0].content"),
        (
            {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        ({"model": MODEL, "input": [{"type": "bogus_item"}]}, "input[0].type"),
        # A container the key does not have; web search without an engine names the entry.
        (
            {
                "model": MODEL,
                "input": "hi",
                "tools": [{"type": "code_interpreter", "container": "c"}],
            },
            "tools[0].container",
        ),
        ({"model": MODEL, "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0]"),
        (
            {
                "model": MODEL,
                "input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}],
            },
            "input[0].call_id",
        ),
        ({"model": MODEL, "input": [{"type": "item_reference", "id": "msg_nope"}]}, "input[0].id"),
        (
            {"model": MODEL, "input": "hi", "previous_response_id": "resp_x", "conversation": "c"},
            "conversation",
        ),
        (
            {"model": MODEL, "input": "hi", "previous_response_id": "resp_nope"},
            "previous_response_id",
        ),
        ({"model": MODEL, "input": "hi", "truncation": "sometimes"}, "truncation"),
    ],
)
def test_bad_requests_are_400_naming_param(
    http: httpx.Client, body: dict[str, object], param: str
) -> None:
    response = http.post("/v1/responses", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_unknown_model_and_conversation_are_404(http: httpx.Client) -> None:
    response = http.post("/v1/responses", json={"model": "no-such-model", "input": "hi"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    response = http.post(
        "/v1/responses", json={"model": MODEL, "input": "hi", "conversation": "conv_nope"}
    )
    assert response.status_code == 404


def test_cancel_of_a_foreground_response_is_400(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Hi", max_output_tokens=16)
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_nope")
