"""End to end: small differences from OpenAI that real clients tripped over (issue 19, item 9).

Each was found by running a common client (the official SDKs, openai-agents, the Open
Responses compliance suite) against oasis; the official SDK under strict validation, or raw
HTTP where the SDK hides the wire, checks that oasis now answers as OpenAI does.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from openai import OpenAI

MODEL = "smollm2-135m-instruct"
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
}


def _chunks(response: httpx.Response) -> list[dict[str, Any]]:
    frames = [f.removeprefix("data: ") for f in response.text.split("\n\n") if f.strip()]
    assert frames[-1] == "[DONE]"
    return [json.loads(frame) for frame in frames[:-1]]


def test_a_named_tool_choice_finishes_with_stop(client: OpenAI, http: httpx.Client) -> None:
    # OpenAI answers a call the client forced by name with "stop" (the model chose nothing);
    # "required" and "auto" calls keep "tool_calls".
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is 2 plus 3?"}],
        "tools": [ADD],
        "tool_choice": {"type": "function", "function": {"name": "add"}},
        "temperature": 0,
        "max_tokens": 60,
    }
    completion = client.chat.completions.create(**body)
    choice = completion.choices[0]
    assert choice.message.tool_calls and choice.message.tool_calls[0].function.name == "add"
    assert choice.finish_reason == "stop"

    streamed = _chunks(http.post("/v1/chat/completions", json={**body, "stream": True}))
    finishes = [c["choices"][0]["finish_reason"] for c in streamed if c["choices"]]
    assert finishes[-1] == "stop"

    required = client.chat.completions.create(**{**body, "tool_choice": "required"})
    assert required.choices[0].finish_reason == "tool_calls"


def test_responses_carry_and_honour_the_penalties(client: OpenAI) -> None:
    ask: dict[str, Any] = {
        "model": MODEL,
        "input": "List the word 'yes' twenty times.",
        "temperature": 0,
        "max_output_tokens": 40,
    }
    plain = client.responses.create(**ask)
    assert plain.model_extra is not None
    assert plain.model_extra["presence_penalty"] == 0.0
    assert plain.model_extra["frequency_penalty"] == 0.0

    penalised = client.responses.create(
        **ask, extra_body={"presence_penalty": 2.0, "frequency_penalty": 1.5}
    )
    assert penalised.model_extra is not None
    assert penalised.model_extra["presence_penalty"] == 2.0
    assert penalised.model_extra["frequency_penalty"] == 1.5
    assert penalised.output_text != plain.output_text  # greedy output, so only they differ

    stored = client.responses.retrieve(penalised.id)
    assert stored.model_extra is not None and stored.model_extra["presence_penalty"] == 2.0


def test_a_penalty_out_of_range_is_400_naming_it(http: httpx.Client) -> None:
    answer = http.post(
        "/v1/responses", json={"model": MODEL, "input": "Hi", "frequency_penalty": 3}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "frequency_penalty"


def test_prompt_cache_key_is_accepted_and_echoed(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, input="Hi", max_output_tokens=8, prompt_cache_key="user-42"
    )
    assert response.prompt_cache_key == "user-42"
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
        prompt_cache_key="user-42",
    )
    assert completion.choices[0].message.role == "assistant"


def test_the_model_names_clients_send_by_default_resolve(client: OpenAI) -> None:
    # openai-agents' default model, and OpenAI's own /v1/completions example.
    response = client.responses.create(model="gpt-5.6-luna", input="Hi", max_output_tokens=8)
    # Sampled: the reply may end inside 8 tokens or be cut there.
    assert response.model == "gpt-5.6-luna" and response.status in {"completed", "incomplete"}
    completion = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=4
    )
    assert completion.model == "gpt-3.5-turbo-instruct"
    embedding = client.embeddings.create(
        model="text-embedding-3-large", input="hello", encoding_format="float"
    )
    assert len(embedding.data[0].embedding) == 384
    assert client.models.retrieve("gpt-4.1-nano").id == "gpt-4.1-nano"
    listed = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in listed
    assert not [name for name in listed if set(name) & set("*?[")]
