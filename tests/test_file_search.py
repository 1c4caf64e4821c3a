"""End to end: the ``file_search`` hosted tool in Responses, on the real chat and embeddings
models, forced with ``tool_choice`` so the protocol is deterministic."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.responses_helpers import MODEL, check_order, sse_events

DOCUMENTS = {
    "lighthouse.txt": "The Fastnet lighthouse keeper's cat is named Biscuit. "
    "Biscuit sleeps in the lantern room every afternoon.",
    "orchard.txt": "The orchard grows Bramley apples and Conference pears; "
    "harvest starts in late September.",
    "engine.txt": "The steam engine in the museum was built in 1851 and restored in 1999.",
}
QUESTION = "What is the name of the lighthouse keeper's cat?"
# The tiny model copies this, and so cites the first passage by its number.
ECHO = 'Repeat exactly this text and nothing else: "Biscuit [1]"'


@pytest.fixture(scope="module")
def library(client: OpenAI) -> Iterator[tuple[str, dict[str, str]]]:
    store = client.vector_stores.create(name="library")
    batch = client.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[(name, io.BytesIO(text.encode())) for name, text in DOCUMENTS.items()],
        poll_interval_ms=100,
    )
    assert batch.file_counts.completed == len(DOCUMENTS)
    ids = {
        f.filename: f.id for f in client.files.list(purpose="assistants") if f.filename in DOCUMENTS
    }
    yield store.id, ids
    client.vector_stores.delete(store.id)


def _request(store_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "input": QUESTION,
        "tools": [{"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 2}],
        "tool_choice": {"type": "file_search"},
        # One search, then the answer: the tiny model may otherwise search again.
        "max_tool_calls": 1,
        "temperature": 0,
        "max_output_tokens": 60,
        **extra,
    }


def test_forced_file_search_cites_the_document(
    client: OpenAI, library: tuple[str, dict[str, str]]
) -> None:
    store_id, ids = library
    response = client.responses.create(
        **_request(store_id, include=["file_search_call.results"])  # type: ignore[arg-type]
    )
    call = response.output[0]
    assert call.type == "file_search_call"
    assert call.status == "completed" and call.queries
    assert call.id.startswith("fs_")
    assert call.results is not None and call.results[0].file_id == ids["lighthouse.txt"]
    assert "Biscuit" in (call.results[0].text or "")
    assert 0 <= (call.results[0].score or 0) <= 1
    message = response.output[-1]
    assert message.type == "message"
    part = message.content[0]
    assert part.type == "output_text"
    cited = [a for a in part.annotations if a.type == "file_citation"]
    assert cited and cited[0].file_id == ids["lighthouse.txt"]
    # At the end of the text, or where the answer wrote the passage's number.
    assert cited[0].filename == "lighthouse.txt" and 0 < cited[0].index <= len(part.text)
    assert response.tools[0].type == "file_search"
    # The search is what the store records as activity.
    assert client.vector_stores.retrieve(store_id).last_active_at is not None
    follow = client.responses.create(
        model=MODEL,
        input="Thanks!",
        previous_response_id=response.id,
        max_output_tokens=8,
    )
    items = client.responses.input_items.list(follow.id, order="asc").data
    assert any(i.type == "file_search_call" and i.id == call.id for i in items)


def test_results_only_when_included(client: OpenAI, library: tuple[str, dict[str, str]]) -> None:
    store_id, _ = library
    response = client.responses.create(**_request(store_id))  # type: ignore[arg-type]
    call = response.output[0]
    assert call.type == "file_search_call" and call.results is None


def test_the_stream_orders_the_search_events(
    http: httpx.Client, library: tuple[str, dict[str, str]]
) -> None:
    store_id, ids = library
    response = http.post("/v1/responses", json=_request(store_id, stream=True))
    assert response.status_code == 200
    events = sse_events(response)
    check_order(events)
    kinds = [e["type"] for e in events]
    search = [k for k in kinds if k.startswith("response.file_search_call.")]
    assert search == [
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
    ]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"] == {
        "type": "file_search_call",
        "id": added["item"]["id"],
        "status": "in_progress",
        "queries": [],
        "results": None,
    }
    annotations = [e for e in events if e["type"] == "response.output_text.annotation.added"]
    assert annotations[0]["annotation"]["file_id"] == ids["lighthouse.txt"]
    assert [a["annotation_index"] for a in annotations] == list(range(len(annotations)))
    assert kinds.index("response.output_text.annotation.added") < kinds.index(
        "response.output_text.done"
    )
    done = [e for e in events if e["type"] == "response.content_part.done"][-1]
    assert done["part"]["annotations"] == [a["annotation"] for a in annotations]


def test_a_cited_passage_puts_its_citation_where_the_mark_was(
    http: httpx.Client, library: tuple[str, dict[str, str]]
) -> None:
    """A passage's [n] leaves the text and its file_citation's index is where it stood;
    an answer that cites no number gets the files read cited at its end. Either way the
    stream's deltas and annotation events add up to the final item. (Exact offsets from
    a known text: test_file_marks_become_citations_where_they_stood.)"""
    store_id, ids = library
    body = _request(store_id, input=ECHO, stream=True)
    response = http.post("/v1/responses", json=body)
    assert response.status_code == 200
    events = sse_events(response)
    check_order(events)
    final = events[-1]["response"]
    call, message = final["output"][0], final["output"][-1]
    assert call["type"] == "file_search_call" and message["type"] == "message"
    part = message["content"][0]
    text = part["text"]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == text
    added = [
        e["annotation"] for e in events if e["type"] == "response.output_text.annotation.added"
    ]
    assert added == part["annotations"]
    cited = [a for a in part["annotations"] if a["type"] == "file_citation"]
    assert cited and set(ids.values()) >= {a["file_id"] for a in cited}
    files = len({a["file_id"] for a in cited})
    assert not re.search(rf"\[[1-{files}]\]", text), text  # file marks left the text
    inside = [a for a in cited if a["index"] < len(text)]
    if inside:  # the model cited by number: no fallback waits at the end
        assert all(a["index"] > 0 and not text[a["index"] - 1].isspace() for a in inside)
    else:  # one citation per file read, at the end
        assert len(cited) == files and all(a["index"] == len(text) for a in cited)


def test_a_file_attached_just_before_the_question_is_searched(client: OpenAI) -> None:
    """The tool waits (bounded, ``search_wait_seconds``) for files still being indexed,
    as a user who attaches a file and asks at once expects."""
    store = client.vector_stores.create(name="fresh")
    # Twenty-odd small chunks: indexing takes longer than the model's forced call.
    filler = " ".join(
        f"Note {i}: the archive keeps ledger number {i * 7} on shelf {i}." for i in range(120)
    )
    text = filler + " The zeppelin hangar in Friedrichshafen is painted teal."
    upload = client.files.create(
        file=("zeppelin.txt", io.BytesIO(text.encode())), purpose="assistants"
    )
    attached = client.vector_stores.files.create(
        vector_store_id=store.id,
        file_id=upload.id,
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
        },
    )
    assert attached.status == "in_progress"
    try:
        response = client.responses.create(
            model=MODEL,
            input="What colour is the zeppelin hangar?",
            tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
            tool_choice={"type": "file_search"},
            include=["file_search_call.results"],
            max_tool_calls=1,
            temperature=0,
            max_output_tokens=60,
        )
        call = response.output[0]
        assert call.type == "file_search_call" and call.status == "completed"
        assert call.results and {r.file_id for r in call.results} == {upload.id}
        assert client.vector_stores.files.retrieve(upload.id, vector_store_id=store.id).status == (
            "completed"
        )
    finally:
        client.vector_stores.delete(store.id)
        client.files.delete(upload.id)


def test_stream_helper_keeps_the_citations(
    client: OpenAI, library: tuple[str, dict[str, str]]
) -> None:
    store_id, ids = library
    with client.responses.stream(**_request(store_id)) as stream:  # type: ignore[arg-type]
        events = list(stream)  # the helper checked and folded every event
    # The tiny model may run on until the budget ends the turn (incomplete).
    assert events[-1].type in {"response.completed", "response.incomplete"}
    final = events[-1].response  # type: ignore[union-attr]
    message = final.output[-1]
    assert message.type == "message"
    cited = [a.file_id for a in message.content[0].annotations]  # type: ignore[union-attr]
    assert cited[0] == ids["lighthouse.txt"]


def test_bad_tools_are_400s_and_missing_stores_fail_the_item(
    client: OpenAI, http: httpx.Client
) -> None:
    bad = http.post(
        "/v1/responses",
        json={
            "model": MODEL,
            "input": "x",
            "tools": [
                {
                    "type": "file_search",
                    "vector_store_ids": ["vs_x"],
                    "ranking_options": {"score_threshold": 2},
                }
            ],
        },
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "tools[0].ranking_options.score_threshold"
    bad = http.post(
        "/v1/responses",
        json={
            "model": MODEL,
            "input": "x",
            "tools": [
                {"type": "file_search", "vector_store_ids": ["vs_x"], "filters": {"type": "eq"}}
            ],
        },
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tools[0].filters.key"
    response = client.responses.create(**_request("vs_missing"))  # type: ignore[arg-type]
    assert response.status in {"completed", "incomplete"}  # the tool failed, not the response
    call = response.output[0]
    assert call.type == "file_search_call" and call.status == "failed"


def test_a_stored_call_replays_as_the_call_and_its_passages() -> None:
    from oasis.tools.registry import replay_item

    item = {
        "type": "file_search_call",
        "id": "fs_1",
        "status": "completed",
        "queries": ["keeper's cat"],
        "results": [
            {"file_id": "file-1", "filename": "lighthouse.txt", "text": "Biscuit", "score": 0.9}
        ],
    }
    replayed = replay_item(item)
    assert replayed is not None
    assert replayed.name == "file_search"
    assert json.loads(replayed.arguments) == {"queries": ["keeper's cat"]}
    assert replayed.output.endswith("\n\n[1] lighthouse.txt:\nBiscuit")
    failed = replay_item({**item, "status": "failed", "results": None})
    assert failed is not None and "failed" in failed.output


def test_file_marks_become_citations_where_they_stood() -> None:
    """The builder drops a file's [n] marks (and the spaces before them) from the text as
    it streams, a mark split across deltas included, and puts a file_citation at each
    mark's place; a number no source has stays; the end-of-text fallback then stays out."""
    from oasis.core.events import Finished, TextDelta
    from oasis.responses.events import ResponseBuilder
    from oasis.tools.base import Cite

    builder = ResponseBuilder({"id": "resp_1", "status": "in_progress"})
    assert builder.sources.add_file("file-a", "a.txt") == 1
    assert builder.sources.add_file("file-b", "b.txt") == 2
    assert builder.sources.add_file("file-a", "a.txt") == 1
    builder.hosted(Cite({"type": "file_citation", "file_id": "file-a", "filename": "a.txt"}))
    events: list[Any] = []
    for piece in ["The cat is Biscuit [", "1]. Pears [2", "] grow [9] here [1]", " "]:
        events += builder.feed(TextDelta(piece))
    events += builder.finish_step(Finished("stop", "", prompt_tokens=1, completion_tokens=1))
    part = builder.output[0]["content"][0]
    text = part["text"]
    assert text == "The cat is Biscuit. Pears grow [9] here "
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == text and "[1" not in "".join(deltas)
    cited = [(a["file_id"], text[: a["index"]]) for a in part["annotations"]]
    assert cited == [
        ("file-a", "The cat is Biscuit"),
        ("file-b", "The cat is Biscuit. Pears"),
        ("file-a", "The cat is Biscuit. Pears grow [9] here"),
    ]
    assert all(a["type"] == "file_citation" and a["filename"] for a in part["annotations"])
    added = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert [e.annotation.model_dump() for e in added] == part["annotations"]
    # Each annotation comes after the text up to its index has been sent.
    sent = 0
    for event in events:
        if event.type == "response.output_text.delta":
            sent += len(event.delta)
        elif event.type == "response.output_text.annotation.added":
            assert event.annotation.index <= sent


def test_without_marks_the_files_read_are_cited_at_the_end() -> None:
    from oasis.core.events import Finished, TextDelta
    from oasis.responses.events import ResponseBuilder
    from oasis.tools.base import Cite

    builder = ResponseBuilder({"id": "resp_1", "status": "in_progress"})
    builder.sources.add_file("file-a", "a.txt")
    builder.hosted(Cite({"type": "file_citation", "file_id": "file-a", "filename": "a.txt"}))
    builder.feed(TextDelta("Biscuit, as [ the file says"))
    builder.finish_step(Finished("stop", "", prompt_tokens=1, completion_tokens=1))
    part = builder.output[0]["content"][0]
    assert part["text"] == "Biscuit, as [ the file says"
    assert part["annotations"] == [
        {"type": "file_citation", "file_id": "file-a", "filename": "a.txt", "index": 27}
    ]
