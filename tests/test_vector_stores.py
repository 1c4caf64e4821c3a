"""End to end: the vector stores API with the official SDK (strict), on the real
embeddings model: every endpoint, the poll helpers, errors in the envelope, retrieval
quality, and ingestion that survives a restart."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from tests.server import Server, start_server

DOCUMENTS = {
    "volcano.md": "# Volcanoes\n\nMount Kilimanjaro is a dormant volcano in Tanzania. "
    "Its summit, Uhuru Peak, rises 5,895 metres above sea level.",
    "baking.txt": "To bake sourdough bread, feed the starter the night before, mix flour, "
    "water and salt, fold the dough every half hour and bake it in a hot Dutch oven.",
    "saturn.html": "<html><body><h1>Saturn</h1><p>Saturn is the sixth planet from the Sun. "
    "Its rings are made mostly of ice particles with some rocky debris.</p></body></html>",
    "tides.json": '{"topic": "tides", "text": "Tides are caused by the gravitational pull '
    'of the Moon and, to a lesser degree, the Sun."}',
}


def _file(name: str, text: str) -> tuple[str, io.BytesIO]:
    return (name, io.BytesIO(text.encode()))


@pytest.fixture(scope="module")
def corpus(client: OpenAI) -> Iterator[tuple[str, dict[str, str]]]:
    """A store holding the documents (attribute ``kind``), and their file ids by name."""
    store = client.vector_stores.create(name="corpus", metadata={"team": "docs"})
    ids: dict[str, str] = {}
    for name, text in DOCUMENTS.items():
        kind = "science" if name != "baking.txt" else "food"
        done = client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id,
            file=_file(name, text),
            attributes={"kind": kind, "length": len(text)},
            poll_interval_ms=100,
        )
        assert done.status == "completed", done.last_error
        ids[name] = done.id
    yield store.id, ids
    client.vector_stores.delete(store.id)


def test_a_fact_ranks_its_document_first(
    client: OpenAI, corpus: tuple[str, dict[str, str]]
) -> None:
    store_id, ids = corpus
    page = client.vector_stores.search(store_id, query="How tall is Kilimanjaro?")
    assert page.data[0].file_id == ids["volcano.md"]
    assert page.data[0].filename == "volcano.md"
    assert "5,895" in page.data[0].content[0].text
    assert all(0 <= r.score <= 1 for r in page.data)
    assert [r.score for r in page.data] == sorted((r.score for r in page.data), reverse=True)
    rings = client.vector_stores.search(store_id, query=["what are planetary rings made of"])
    assert rings.data[0].file_id == ids["saturn.html"]
    assert "<p>" not in rings.data[0].content[0].text  # parsed, not raw HTML


def test_search_options(client: OpenAI, corpus: tuple[str, dict[str, str]]) -> None:
    store_id, ids = corpus
    food = client.vector_stores.search(
        store_id,
        query="planets and volcanoes",
        filters={"type": "eq", "key": "kind", "value": "food"},
    )
    assert [r.file_id for r in food.data] == [ids["baking.txt"]]
    assert food.data[0].attributes == {"kind": "food", "length": len(DOCUMENTS["baking.txt"])}
    compound = client.vector_stores.search(
        store_id,
        query="moon",
        filters={
            "type": "and",
            "filters": [
                {"type": "eq", "key": "kind", "value": "science"},
                {"type": "lt", "key": "length", "value": 120},
            ],
        },
    )
    assert {r.file_id for r in compound.data} == {ids["tides.json"]}
    one = client.vector_stores.search(store_id, query="bread", max_num_results=1)
    assert len(one.data) == 1 and one.data[0].file_id == ids["baking.txt"]
    strict = client.vector_stores.search(
        store_id, query="bread", ranking_options={"score_threshold": 0.99}
    )
    assert all(r.score >= 0.99 for r in strict.data)
    dense = client.vector_stores.search(
        store_id, query="sourdough starter", ranking_options={"ranker": "none"}
    )
    assert dense.data[0].file_id == ids["baking.txt"]
    raw = client.vector_stores.with_raw_response.search(
        store_id, query="What is the height of Kilimanjaro?", rewrite_query=True
    )
    assert raw.http_response.json()["search_query"] == ["height Kilimanjaro"]


def test_store_objects_are_exact(client: OpenAI, corpus: tuple[str, dict[str, str]]) -> None:
    store_id, ids = corpus
    store = client.vector_stores.retrieve(store_id)
    assert store.status == "completed"
    assert store.file_counts.completed == store.file_counts.total == len(DOCUMENTS)
    assert store.usage_bytes > sum(len(t) for t in DOCUMENTS.values())
    assert store.metadata == {"team": "docs"}
    assert store.last_active_at is not None and store.last_active_at >= store.created_at
    listed = client.vector_stores.files.list(store_id, filter="completed", order="asc")
    assert [f.id for f in listed.data] == list(ids.values())
    assert all(f.chunking_strategy.type == "static" for f in listed.data)  # type: ignore[union-attr]
    assert client.vector_stores.files.list(store_id, filter="failed").data == []
    paged = [f.id for f in client.vector_stores.files.list(store_id, limit=1, order="asc")]
    assert paged == list(ids.values())
    # `before` pages back towards the start, each page still in the order asked for.
    order = list(ids.values())
    for sort, expected in (("asc", order[:-1]), ("desc", order[:0:-1])):
        anchor = order[-1] if sort == "asc" else order[0]
        back = client.vector_stores.files.list(store_id, before=anchor, order=sort, limit=2)
        assert [f.id for f in back.data] == expected[-2:]
        assert back.has_more == (len(expected) > 2)
    content = client.vector_stores.files.content(ids["saturn.html"], vector_store_id=store_id)
    assert "sixth planet" in content.data[0].text  # type: ignore[operator]


def test_store_lifecycle(client: OpenAI) -> None:
    store = client.vector_stores.create(
        name="life", expires_after={"anchor": "last_active_at", "days": 2}
    )
    assert store.object == "vector_store" and store.status == "completed"
    assert store.expires_at == store.last_active_at + 2 * 86400  # type: ignore[operator]
    assert store.file_counts.total == 0 and store.usage_bytes == 0
    changed = client.vector_stores.update(
        store.id, name="renamed", metadata={"a": "b"}, expires_after=None
    )
    assert (changed.name, changed.metadata, changed.expires_at) == ("renamed", {"a": "b"}, None)
    assert store.id in [s.id for s in client.vector_stores.list(limit=100)]
    uploaded = client.files.create(file=_file("a.txt", "alpha beta gamma"), purpose="assistants")
    attached = client.vector_stores.files.create_and_poll(
        file_id=uploaded.id, vector_store_id=store.id, attributes={"n": 1}
    )
    assert attached.id == uploaded.id and attached.status == "completed"
    assert attached.last_error is None
    again = client.vector_stores.files.create(store.id, file_id=uploaded.id)  # idempotent
    assert again.id == uploaded.id and again.status == "completed"
    updated = client.vector_stores.files.update(
        uploaded.id, vector_store_id=store.id, attributes={"n": 2, "tag": "x"}
    )
    assert updated.attributes == {"n": 2, "tag": "x"}
    deleted = client.vector_stores.files.delete(uploaded.id, vector_store_id=store.id)
    assert deleted.deleted and deleted.object == "vector_store.file.deleted"
    after = client.vector_stores.retrieve(store.id)
    assert after.file_counts.total == 0 and after.usage_bytes == 0
    assert client.files.retrieve(uploaded.id).id == uploaded.id  # detached, not deleted
    gone = client.vector_stores.delete(store.id)
    assert gone.deleted and gone.object == "vector_store.deleted"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_deleting_a_file_detaches_it_everywhere(client: OpenAI) -> None:
    uploaded = client.files.create(file=_file("d.txt", "delta epsilon"), purpose="assistants")
    store = client.vector_stores.create(file_ids=[uploaded.id])
    client.vector_stores.files.poll(uploaded.id, vector_store_id=store.id, poll_interval_ms=100)
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 1
    client.files.delete(uploaded.id)
    after = client.vector_stores.retrieve(store.id)
    assert after.file_counts.total == 0 and after.usage_bytes == 0
    assert client.vector_stores.search(store.id, query="delta").data == []


def test_batches(client: OpenAI) -> None:
    store = client.vector_stores.create(name="batches")
    batch = client.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[_file(f"b{i}.txt", f"document number {i} about topic {i}") for i in range(3)],
        poll_interval_ms=100,
    )
    assert batch.object == "vector_store.files_batch" and batch.id.startswith("vsfb_")
    assert batch.status == "completed"
    assert batch.file_counts.completed == batch.file_counts.total == 3
    files = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert len(files.data) == 3
    same = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    assert same.file_counts.completed == 3
    bad = client.files.create(file=_file("bad.bin", "\x00\x01binary"), purpose="assistants")
    good = client.files.create(file=_file("ok.txt", "fine text"), purpose="assistants")
    mixed = client.vector_stores.file_batches.create_and_poll(
        store.id,
        files=[
            {"file_id": bad.id},
            {"file_id": good.id, "attributes": {"k": "v"}},
        ],
        poll_interval_ms=100,
    )
    assert (mixed.file_counts.failed, mixed.file_counts.completed) == (1, 1)
    failed = client.vector_stores.files.retrieve(bad.id, vector_store_id=store.id)
    assert failed.status == "failed" and failed.last_error is not None
    assert failed.last_error.code == "unsupported_file"
    assert client.vector_stores.files.retrieve(good.id, vector_store_id=store.id).attributes == {
        "k": "v"
    }
    cancelled = client.vector_stores.file_batches.cancel(mixed.id, vector_store_id=store.id)
    assert cancelled.file_counts.in_progress == 0
    client.vector_stores.delete(store.id)


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    return dict(body["error"])


def test_errors(client: OpenAI, http: httpx.Client, server: Server) -> None:
    store = client.vector_stores.create(name="errors")
    uploaded = client.files.create(file=_file("e.txt", "echo"), purpose="assistants")
    for method, path in [
        ("GET", "/v1/vector_stores/vs_missing"),
        ("POST", "/v1/vector_stores/vs_missing/search"),
        ("GET", f"/v1/vector_stores/{store.id}/files/file-missing"),
        ("GET", f"/v1/vector_stores/{store.id}/file_batches/vsfb_missing"),
        ("DELETE", "/v1/vector_stores/vs_missing"),
    ]:
        response = http.request(method, path, json={"query": "x"} if "search" in path else None)
        assert response.status_code == 404, (path, response.text)
        assert _error(response)["type"] == "invalid_request_error"
    missing = http.post(f"/v1/vector_stores/{store.id}/files", json={"file_id": "file-nope"})
    assert missing.status_code == 404 and _error(missing)["param"] == "file_id"
    bounds = http.post(
        f"/v1/vector_stores/{store.id}/files",
        json={
            "file_id": uploaded.id,
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
            },
        },
    )
    assert bounds.status_code == 400
    assert _error(bounds)["param"] == "chunking_strategy.static.chunk_overlap_tokens"
    small = http.post(
        "/v1/vector_stores",
        json={
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
            },
        },
    )
    assert small.status_code == 400
    assert _error(small)["param"] == "chunking_strategy.static.max_chunk_size_tokens"
    many = http.post(
        f"/v1/vector_stores/{store.id}/files",
        json={"file_id": uploaded.id, "attributes": {f"k{i}": i for i in range(17)}},
    )
    assert many.status_code == 400 and _error(many)["param"] == "attributes"
    bad_filter = http.post(
        f"/v1/vector_stores/{store.id}/search",
        json={"query": "x", "filters": {"type": "in", "key": "k", "value": "v"}},
    )
    assert bad_filter.status_code == 400 and _error(bad_filter)["param"] == "filters.value"
    too_many = http.post(
        f"/v1/vector_stores/{store.id}/search", json={"query": "x", "max_num_results": 51}
    )
    assert too_many.status_code == 400 and _error(too_many)["param"] == "max_num_results"
    with OpenAI(base_url=server.api_url, api_key="sk-someone-else", max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.vector_stores.retrieve(store.id)
        with pytest.raises(openai.NotFoundError):
            other.vector_stores.search(store.id, query="echo")
        assert store.id not in [s.id for s in other.vector_stores.list()]
        mine = other.vector_stores.create()
        with pytest.raises(openai.NotFoundError):  # another key's file cannot be attached
            other.vector_stores.files.create(mine.id, file_id=uploaded.id)
    client.vector_stores.delete(store.id)


def test_ingestion_survives_a_restart(tmp_path: Path) -> None:
    """A file in progress when the server stops is indexed when it starts again."""
    data = tmp_path / "data"
    config = {"preload": []}
    srv = start_server(data, config=config)
    try:
        with OpenAI(base_url=srv.api_url, api_key="sk-r", max_retries=0) as sdk:
            store = sdk.vector_stores.create(name="restart")
            # Long enough to still be in progress a moment after it is attached (the
            # embeddings model loads on first use).
            text = " ".join(f"sentence {i} about granite quarries." for i in range(3000))
            uploaded = sdk.files.create(file=_file("long.txt", text), purpose="assistants")
            attached = sdk.vector_stores.files.create(store.id, file_id=uploaded.id)
            assert attached.status == "in_progress"
            assert sdk.vector_stores.retrieve(store.id).file_counts.in_progress == 1
    finally:
        srv.stop()
    with sqlite3.connect(data / "oasis.db") as db:
        left = db.execute("SELECT status FROM vector_store_files").fetchall()
    assert left == [("in_progress",)]  # stopped mid-way: the restart has work to resume
    srv = start_server(data, config=config)
    try:
        with OpenAI(
            base_url=srv.api_url, api_key="sk-r", max_retries=0, _strict_response_validation=True
        ) as sdk:
            done = sdk.vector_stores.files.poll(
                uploaded.id, vector_store_id=store.id, poll_interval_ms=200
            )
            assert done.status == "completed", done.last_error
            after = sdk.vector_stores.retrieve(store.id)
            assert after.status == "completed" and after.file_counts.completed == 1
            hits = sdk.vector_stores.search(store.id, query="granite quarries")
            assert hits.data and hits.data[0].file_id == uploaded.id
        assert "resuming 1 file(s)" in srv.log()
    finally:
        srv.stop()


def test_search_sees_every_change_to_the_store(client: OpenAI) -> None:
    """Searches run on each store's chunks held in memory; every change reaches them
    (a file added or detached, new attributes, the store deleted), and the vector-only
    scores are the cosines of the embeddings API's own vectors for the same texts."""
    import numpy as np

    texts = {
        "alpha.txt": "The violet submarine docks at Pier Nine every Tuesday.",
        "beta.txt": "The crimson glider lands on Hill Four when the wind drops.",
    }
    store = client.vector_stores.create(name="changes")
    alpha = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=_file("alpha.txt", texts["alpha.txt"]), poll_interval_ms=100
    )
    query = "Where does the crimson glider land?"
    first = client.vector_stores.search(store.id, query=query)  # loads the store's chunks
    assert [r.file_id for r in first.data] == [alpha.id]
    beta = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=_file("beta.txt", texts["beta.txt"]), poll_interval_ms=100
    )
    dense = client.vector_stores.search(store.id, query=query, ranking_options={"ranker": "none"})
    assert [r.file_id for r in dense.data] == [beta.id, alpha.id]
    vectors = client.embeddings.create(
        model="text-embedding-3-small",
        input=[query, texts["beta.txt"], texts["alpha.txt"]],
        encoding_format="float",
    ).data
    q, *docs = (np.array(v.embedding) / np.linalg.norm(v.embedding) for v in vectors)
    assert [r.score for r in dense.data] == pytest.approx([float(q @ d) for d in docs], abs=1e-4)

    client.vector_stores.files.update(beta.id, vector_store_id=store.id, attributes={"team": "red"})
    red = client.vector_stores.search(
        store.id, query=query, filters={"type": "eq", "key": "team", "value": "red"}
    )
    assert [(r.file_id, r.attributes) for r in red.data] == [(beta.id, {"team": "red"})]
    hybrid = client.vector_stores.search(store.id, query=query)
    assert {r.file_id: r.attributes for r in hybrid.data}[beta.id] == {"team": "red"}

    client.vector_stores.files.delete(beta.id, vector_store_id=store.id)
    after = client.vector_stores.search(store.id, query=query)
    assert [r.file_id for r in after.data] == [alpha.id]
    client.vector_stores.delete(store.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.search(store.id, query=query)
