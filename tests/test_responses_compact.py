"""End to end: ``POST /v1/responses/compact`` (issue 19, item 8).

A conversation (a stored chain and/or new input) is summarized by the model into one
``compaction`` item; sent back as input, the item stands for the user messages and the
summary. The official SDK with strict validation checks the shapes.
"""

from __future__ import annotations

import base64
import json

import httpx
from openai import OpenAI

from tests.responses_helpers import MODEL


def test_compact_a_chain_and_continue_from_it(client: OpenAI, http: httpx.Client) -> None:
    first = client.responses.create(
        model=MODEL, input="My name is Ada and I like green tea.", max_output_tokens=24
    )
    compacted = client.responses.compact(
        model=MODEL, previous_response_id=first.id, input="My cat is called Tom."
    )
    assert compacted.object == "response.compaction"
    assert type(compacted.created_at) is int
    assert compacted.usage.input_tokens > 0 and compacted.usage.output_tokens > 0
    [item] = compacted.output
    assert item.type == "compaction"
    held = json.loads(base64.b64decode(item.encrypted_content))
    assert held["user_messages"] == [
        "My name is Ada and I like green tea.",
        "My cat is called Tom.",
    ]
    assert held["summary"]

    # The item goes back as input, in the SDK's own form, and counts as what it holds.
    question = {"role": "user", "content": "What is my cat called?"}
    carried = [item.model_dump(exclude_none=True), question]
    with_it = http.post("/v1/responses/input_tokens", json={"model": MODEL, "input": carried})
    without = http.post("/v1/responses/input_tokens", json={"model": MODEL, "input": [question]})
    assert with_it.status_code == 200, with_it.text
    assert with_it.json()["input_tokens"] > without.json()["input_tokens"] + 10
    follow = client.responses.create(model=MODEL, input=carried, max_output_tokens=8)  # type: ignore[arg-type]
    assert follow.status in {"completed", "incomplete"}
    listed = client.responses.input_items.list(follow.id, order="asc")
    assert [i.type for i in listed.data] == ["compaction", "message"]


def test_compact_errors(http: httpx.Client) -> None:
    nothing = http.post("/v1/responses/compact", json={"model": MODEL})
    assert nothing.status_code == 400 and nothing.json()["error"]["param"] == "input"
    forged = {"type": "compaction", "encrypted_content": "bm90IG91cnM="}
    answer = http.post(
        "/v1/responses",
        json={"model": MODEL, "input": [forged, {"role": "user", "content": "Hi"}]},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "input[0].encrypted_content"
    unknown = http.post("/v1/responses/compact", json={"model": "no-such-model", "input": "x"})
    assert unknown.status_code == 404
