"""``/v1/conversations``: CRUD, items, and responses that append their turns."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from openai import OpenAI

from tests.responses_helpers import MODEL, SHORT


def test_conversation_crud(client: OpenAI, http: httpx.Client) -> None:
    conversation = client.conversations.create(
        metadata={"topic": "demo"},
        items=[{"type": "message", "role": "user", "content": "Hello!"}],
    )
    assert conversation.id.startswith("conv_") and conversation.object == "conversation"
    assert conversation.metadata == {"topic": "demo"}
    fetched = client.conversations.retrieve(conversation.id)
    assert fetched.model_dump() == conversation.model_dump()
    updated = client.conversations.update(conversation.id, metadata={"topic": "changed"})
    assert updated.metadata == {"topic": "changed"}
    deleted = client.conversations.delete(conversation.id)
    assert deleted.deleted is True and deleted.object == "conversation.deleted"
    with pytest.raises(openai.NotFoundError) as missing:
        client.conversations.retrieve(conversation.id)
    assert missing.value.body["param"] == "conversation_id"  # type: ignore[index]
    assert http.get(f"/v1/conversations/{conversation.id}/items").status_code == 404
    bad = http.post("/v1/conversations", json={"metadata": {"k" * 65: "v"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "metadata"


def test_conversation_items(client: OpenAI) -> None:
    conversation = client.conversations.create()
    added = client.conversations.items.create(
        conversation.id,
        items=[{"type": "message", "role": "user", "content": f"line {i}"} for i in range(5)],
    )
    assert len(added.data) == 5 and added.has_more is False
    newest_first = client.conversations.items.list(conversation.id)
    assert [i.content[0].text for i in newest_first.data] == [f"line {i}" for i in range(4, -1, -1)]
    paged = list(client.conversations.items.list(conversation.id, limit=2, order="asc"))
    assert [i.content[0].text for i in paged] == [f"line {i}" for i in range(5)]
    one = client.conversations.items.retrieve(added.data[2].id, conversation_id=conversation.id)
    assert one.id == added.data[2].id
    after = client.conversations.items.delete(added.data[2].id, conversation_id=conversation.id)
    assert after.id == conversation.id and after.object == "conversation"
    with pytest.raises(openai.NotFoundError) as missing:
        client.conversations.items.retrieve(added.data[2].id, conversation_id=conversation.id)
    assert missing.value.body["param"] == "item_id"  # type: ignore[index]
    assert len(client.conversations.items.list(conversation.id).data) == 4


@pytest.mark.slow
def test_responses_append_to_the_conversation(client: OpenAI) -> None:
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "My name is Ada."}]
    )
    first = client.responses.create(
        model=MODEL, conversation=conversation.id, max_output_tokens=24, **SHORT
    )
    assert first.conversation is not None and first.conversation.id == conversation.id
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [(i.type, i.role) for i in items] == [
        ("message", "user"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert items[2].id == first.output[0].id
    second = client.responses.create(
        model=MODEL, conversation={"id": conversation.id}, input="And?", max_output_tokens=16
    )
    assert first.usage and second.usage
    assert second.usage.input_tokens > first.usage.input_tokens
    assert len(client.conversations.items.list(conversation.id).data) == 5


def test_concurrent_appends_keep_one_order(client: OpenAI, http: httpx.Client) -> None:
    """3 writers x 50 appends at once: paging reaches every item once, in append order."""
    conversation = client.conversations.create()
    writers, appends = 3, 50
    barrier = threading.Barrier(writers)

    def write(writer: int) -> None:
        barrier.wait()
        for i in range(appends):
            added = http.post(
                f"/v1/conversations/{conversation.id}/items",
                json={"items": [{"role": "user", "content": f"{writer}:{i}"}]},
            )
            assert added.status_code == 200, added.text

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))

    def texts(order: str) -> list[str]:
        # A small page size, so many pages start from an `after` anchor.
        pages = client.conversations.items.list(conversation.id, limit=7, order=order)
        return [item.content[0].text for item in pages]

    ascending = texts("asc")
    assert sorted(ascending) == sorted(f"{w}:{i}" for w in range(writers) for i in range(appends))
    for writer in range(writers):
        mine = [int(t.split(":")[1]) for t in ascending if t.startswith(f"{writer}:")]
        assert mine == list(range(appends))  # each writer's items in the order it added them
    assert texts("desc") == ascending[::-1]
