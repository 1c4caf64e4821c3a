"""Stored Chat Completions end to end: ``store: true`` keeps a completion (streamed or not)
with its request messages and metadata; the official SDK (strict validation) lists,
retrieves, updates and deletes it; each key sees only its own; a restart loses nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletion

from tests.responses_helpers import MODEL
from tests.server import Server, sdk_for, start_server
from tests.test_batches import create as create_batch
from tests.test_batches import lines_of, upload, wait

KEYS = ("sk-chat-store-a", "sk-chat-store-b")
QUESTION = "What is 2+2? Answer with a number only."
SHORT: dict[str, Any] = {"model": MODEL, "max_tokens": 4, "temperature": 0}


class World:
    """A server with two keys on one data dir, which a test may restart."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server = self._start()

    def _start(self) -> Server:
        # OASIS_TEST_DATABASE_URL=postgresql://… runs these tests on PostgreSQL instead.
        url = os.environ.get("OASIS_TEST_DATABASE_URL")
        return start_server(
            self.data_dir,
            config={"preload": [MODEL]},
            env={"OASIS_API_KEYS": ",".join(KEYS)},
            args=["--database-url", url] if url else [],
        )

    def sdk(self, key: str = KEYS[0]) -> OpenAI:
        return sdk_for(self.server, key)

    def lenient(self, key: str = KEYS[0]) -> OpenAI:
        """The SDK without strict validation: its ``ChatCompletionStoreMessage`` allows
        only ``role: "assistant"``, so a strict client rejects the request messages that
        ``messages.list`` returns (from OpenAI as from oasis)."""
        return OpenAI(base_url=self.server.api_url, api_key=key, max_retries=0, timeout=300)

    def raw(self, key: str = KEYS[0]) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.Client(base_url=self.server.api_url, headers=headers, timeout=300)

    def restart(self) -> None:
        self.server.stop()
        self.server = self._start()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("oasis-chat-store"))
    yield w
    w.server.stop()


@pytest.fixture(scope="module")
def sdk(world: World) -> Iterator[OpenAI]:
    with world.sdk() as client:
        yield client


def _tag() -> dict[str, str]:
    """Metadata unique to one test, so its list filters see only its own completions."""
    return {"test": uuid.uuid4().hex}


def _create(sdk: OpenAI, metadata: dict[str, str] | None = None, **extra: Any) -> ChatCompletion:
    return sdk.chat.completions.create(
        messages=[{"role": "user", "content": QUESTION}],
        store=True,
        metadata=metadata,
        **SHORT,
        **extra,
    )


def _without_metadata(completion: ChatCompletion) -> dict[str, Any]:
    body = completion.model_dump(exclude_unset=True)
    body.pop("metadata", None)
    return body


def test_store_keeps_the_completion_its_messages_and_metadata(world: World, sdk: OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You answer briefly."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is 2+2? "},
                {"type": "text", "text": "A number."},
            ],
        },
    ]
    created = sdk.chat.completions.create(
        messages=messages, store=True, metadata={"topic": "sums"}, **SHORT
    )
    got = sdk.chat.completions.retrieve(created.id)
    assert got.id == created.id and got.object == "chat.completion"
    assert _without_metadata(got) == created.model_dump(exclude_unset=True)
    assert got.metadata == {"topic": "sums"}  # type: ignore[attr-defined]

    with world.lenient() as lenient:
        page = lenient.chat.completions.messages.list(created.id)
    assert [m.id for m in page.data] == [f"{created.id}-0", f"{created.id}-1"]
    with world.raw() as raw:
        body = raw.get(f"/chat/completions/{created.id}/messages").json()
    assert body["object"] == "list" and body["has_more"] is False
    assert (body["first_id"], body["last_id"]) == (f"{created.id}-0", f"{created.id}-1")
    system, user = body["data"]
    assert system == {
        "id": f"{created.id}-0",
        "role": "system",
        "content": "You answer briefly.",
        "name": None,
        "content_parts": None,
    }
    assert user["role"] == "user" and user["content"] == "What is 2+2? A number."
    assert user["content_parts"] == [
        {"type": "text", "text": "What is 2+2? "},
        {"type": "text", "text": "A number."},
    ]


def test_messages_page_with_after_limit_and_order(world: World, sdk: OpenAI) -> None:
    turns: list[Any] = [
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Two"},
        {"role": "user", "content": QUESTION},
    ]
    created = sdk.chat.completions.create(messages=turns, store=True, **SHORT)
    ids = [f"{created.id}-{i}" for i in range(3)]
    with world.lenient() as lenient:
        _page_through(lenient, created.id, ids)


def _page_through(lenient: OpenAI, completion_id: str, ids: list[str]) -> None:
    first = lenient.chat.completions.messages.list(completion_id, limit=2)
    assert [m.id for m in first.data] == ids[:2] and first.has_more
    rest = lenient.chat.completions.messages.list(completion_id, limit=2, after=ids[1])
    assert [m.id for m in rest.data] == ids[2:] and not rest.has_more
    every = lenient.chat.completions.messages.list(completion_id, limit=1)
    assert [m.id for m in every] == ids  # the SDK's auto-paging follows the cursors
    backwards = lenient.chat.completions.messages.list(completion_id, order="desc")
    assert [m.id for m in backwards.data] == ids[::-1]
    assert [m.content for m in backwards.data] == [QUESTION, "Two", "One"]


def test_without_store_nothing_is_kept(sdk: OpenAI) -> None:
    tag = _tag()
    for store in (False, None):
        extra = {} if store is None else {"store": store}
        plain = sdk.chat.completions.create(
            messages=[{"role": "user", "content": QUESTION}], metadata=tag, **SHORT, **extra
        )
        with pytest.raises(openai.NotFoundError) as err:
            sdk.chat.completions.retrieve(plain.id)
        assert err.value.body["param"] == "completion_id"  # type: ignore[index]
    assert sdk.chat.completions.list(metadata=tag).data == []


def test_a_streamed_completion_is_stored_whole(sdk: OpenAI) -> None:
    tag = _tag()
    for include_usage in (False, True):
        with sdk.chat.completions.stream(
            messages=[{"role": "user", "content": QUESTION}],
            store=True,
            metadata=tag,
            stream_options={"include_usage": include_usage},
            # Room to stop by itself: the stream helper refuses a "length" ending.
            **{**SHORT, "max_tokens": 32},
        ) as stream:
            final = stream.get_final_completion()
        stored = sdk.chat.completions.retrieve(final.id)
        assert stored.choices[0].message.content == final.choices[0].message.content
        assert stored.choices[0].finish_reason == final.choices[0].finish_reason
        assert (stored.created, stored.model) == (final.created, final.model)
        # The usage is kept even when the client did not ask the stream for it.
        assert stored.usage is not None and stored.usage.completion_tokens >= 1
        if include_usage:
            assert stored.usage == final.usage
    assert len(sdk.chat.completions.list(metadata=tag).data) == 2


def test_list_filters_by_model_and_metadata_and_pages(sdk: OpenAI) -> None:
    tag = _tag()
    made = [_create(sdk, {**tag, "n": str(i)}).id for i in range(3)]
    listed = sdk.chat.completions.list(metadata=tag)
    assert [c.id for c in listed.data] == made and not listed.has_more
    assert all(c.metadata["test"] == tag["test"] for c in listed.data)  # type: ignore[attr-defined]
    assert [c.id for c in sdk.chat.completions.list(metadata={**tag, "n": "1"}).data] == [made[1]]
    assert sdk.chat.completions.list(metadata={**tag, "n": "9"}).data == []

    first = sdk.chat.completions.list(metadata=tag, limit=2)
    assert [c.id for c in first.data] == made[:2] and first.has_more
    second = sdk.chat.completions.list(metadata=tag, limit=2, after=made[1])
    assert [c.id for c in second.data] == made[2:] and not second.has_more
    assert [c.id for c in sdk.chat.completions.list(metadata=tag, limit=1)] == made
    newest = sdk.chat.completions.list(metadata=tag, order="desc")
    assert [c.id for c in newest.data] == made[::-1]

    assert [c.id for c in sdk.chat.completions.list(metadata=tag, model=MODEL).data] == made


def test_metadata_keys_with_quotes_and_accents_filter(sdk: OpenAI) -> None:
    # SQLite's JSON paths miss such keys (they are stored escaped); the filter must not.
    tag = _tag()
    odd = {**tag, 'naïve "key" \\ [0].x': "é"}
    wanted = _create(sdk, odd).id
    _create(sdk, tag)
    assert [c.id for c in sdk.chat.completions.list(metadata=odd).data] == [wanted]
    assert sdk.chat.completions.list(metadata=tag, model="another-model").data == []


def test_update_replaces_metadata(sdk: OpenAI) -> None:
    tag = _tag()
    created = _create(sdk, {**tag, "stage": "draft"})
    updated = sdk.chat.completions.update(created.id, metadata={**tag, "stage": "final"})
    assert updated.id == created.id
    assert updated.metadata == {**tag, "stage": "final"}  # type: ignore[attr-defined]
    assert _without_metadata(updated) == created.model_dump(exclude_unset=True)
    again = sdk.chat.completions.retrieve(created.id)
    assert again.metadata == {**tag, "stage": "final"}  # type: ignore[attr-defined]
    assert sdk.chat.completions.list(metadata={**tag, "stage": "draft"}).data == []
    assert len(sdk.chat.completions.list(metadata={**tag, "stage": "final"}).data) == 1
    cleared = sdk.chat.completions.update(created.id, metadata=None)
    assert cleared.metadata == {}  # type: ignore[attr-defined]


def test_delete_removes_the_completion_and_its_messages(world: World, sdk: OpenAI) -> None:
    created = _create(sdk)
    deleted = sdk.chat.completions.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        created.id,
        "chat.completion.deleted",
        True,
    )
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.retrieve(created.id)
    with world.lenient() as lenient, pytest.raises(openai.NotFoundError):
        lenient.chat.completions.messages.list(created.id)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.delete(created.id)


def test_another_keys_completion_is_404(world: World, sdk: OpenAI) -> None:
    tag = _tag()
    mine = _create(sdk, tag)
    with world.sdk(KEYS[1]) as other:
        with pytest.raises(openai.NotFoundError):
            other.chat.completions.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.chat.completions.update(mine.id, metadata={"taken": "yes"})
        with pytest.raises(openai.NotFoundError):
            other.chat.completions.delete(mine.id)
        with world.lenient(KEYS[1]) as lenient, pytest.raises(openai.NotFoundError):
            lenient.chat.completions.messages.list(mine.id)
        assert other.chat.completions.list(metadata=tag).data == []
    assert sdk.chat.completions.retrieve(mine.id).metadata == tag  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "param"),
    [
        ("GET", "/chat/completions?limit=0", {}, "limit"),
        ("GET", "/chat/completions?limit=101", {}, "limit"),
        ("GET", "/chat/completions?order=sideways", {}, "order"),
        ("GET", "/chat/completions?metadata=plain", {}, "metadata"),
        ("GET", "/chat/completions/chatcmpl-none/messages?limit=0", {}, "limit"),
        ("POST", "/chat/completions/chatcmpl-none", {"json": {}}, "metadata"),
        ("POST", "/chat/completions/chatcmpl-none", {"json": {"metadata": "x"}}, "metadata"),
        ("GET", "/chat/completions/chatcmpl-none", {}, "completion_id"),
        ("DELETE", "/chat/completions/chatcmpl-none", {}, "completion_id"),
    ],
)
def test_mistakes_are_4xx_naming_the_param(
    world: World, method: str, path: str, kwargs: dict[str, Any], param: str
) -> None:
    with world.raw() as raw:
        answer = raw.request(method, path, **kwargs)
    assert answer.status_code in {400, 404}, answer.text
    assert answer.json()["error"]["param"] == param


def test_a_batch_line_with_store_is_kept_for_the_batchs_key(world: World, sdk: OpenAI) -> None:
    tag = _tag()
    line = {
        "custom_id": "kept",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            **SHORT,
            "messages": [{"role": "user", "content": QUESTION}],
            "store": True,
            "metadata": tag,
        },
    }
    batch = create_batch(sdk, upload(sdk, [line]))
    done = wait(sdk, batch.id)
    assert done.status == "completed", done
    answer = lines_of(sdk, done.output_file_id)[0]["response"]["body"]
    listed = sdk.chat.completions.list(metadata=tag).data
    assert [c.id for c in listed] == [answer["id"]]
    with world.sdk(KEYS[1]) as other:
        assert other.chat.completions.list(metadata=tag).data == []


def test_stored_completions_survive_a_restart(world: World, sdk: OpenAI) -> None:
    tag = _tag()
    created = _create(sdk, tag)
    world.restart()
    with world.sdk() as fresh:
        got = fresh.chat.completions.retrieve(created.id)
        assert _without_metadata(got) == created.model_dump(exclude_unset=True)
        assert [c.id for c in fresh.chat.completions.list(metadata=tag).data] == [created.id]
    with world.lenient() as lenient:
        page = lenient.chat.completions.messages.list(created.id)
    assert [(m.id, m.content) for m in page.data] == [(f"{created.id}-0", QUESTION)]
