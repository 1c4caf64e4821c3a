"""Unit: document parsing, chunking in model tokens, attribute filters in SQL, fusion."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, create_engine, select

from oasis.errors import InvalidRequestError
from oasis.retrieval.chunking import chunk_text
from oasis.retrieval.filters import check_filter, to_sql
from oasis.retrieval.keywords import KeywordIndex, query_terms
from oasis.retrieval.parsing import DocumentError, extract_text
from oasis.retrieval.ranking import VectorIndex, fuse, to_blob, unit_rows
from oasis.wire.vector_stores import check_chunking


def _words(texts: list[str]) -> list[int]:
    return [max(1, len(t.split())) for t in texts]


def test_chunks_respect_size_and_overlap() -> None:
    text = " ".join(f"w{i}" for i in range(1000))
    chunks = chunk_text(text, _words, 100, 40)
    assert all(c.tokens <= 100 for c in chunks)
    assert chunks[0].text.split()[0] == "w0" and chunks[-1].text.split()[-1] == "w999"
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert second[0] == first[100 - 40]  # 40 tokens shared
    whole = {w for c in chunks for w in c.text.split()}
    assert len(whole) == 1000


def test_a_word_longer_than_a_chunk_is_cut() -> None:
    def chars(texts: list[str]) -> list[int]:
        return [len(t) for t in texts]

    chunks = chunk_text("x" * 1000, chars, 100, 0)
    assert all(c.tokens <= 100 for c in chunks)
    assert "".join(c.text for c in chunks) == "x" * 1000


def test_parsers() -> None:
    assert extract_text(b"<html><script>x()</script><p>Hello</p></html>", "a.html") == "Hello"
    assert json.loads(extract_text(b'{"a": 1}', "a.json")) == {"a": 1}
    assert extract_text(b"def f():\n    pass\n", "f.py").startswith("def f")
    import docx
    from pypdf import PdfWriter

    document = docx.Document()
    document.add_paragraph("The llama sleeps at noon.")
    buffer = io.BytesIO()
    document.save(buffer)
    assert "llama sleeps" in extract_text(buffer.getvalue(), "notes.docx")
    blank = io.BytesIO()
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.write(blank)
    with pytest.raises(DocumentError) as empty:
        extract_text(blank.getvalue(), "blank.pdf")
    assert empty.value.code == "invalid_file"
    with pytest.raises(DocumentError) as binary:
        extract_text(b"\x00\x01\xff\xfe\x00", "data.bin")
    assert binary.value.code == "unsupported_file"
    with pytest.raises(DocumentError):
        extract_text(b"%PDF-1.4 garbage", "broken.pdf")


@pytest.mark.parametrize(
    ("strategy", "param"),
    [
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            {
                "type": "static",
                "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0},
            },
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            {
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101},
            },
            "chunking_strategy.static.chunk_overlap_tokens",
        ),
        ({"type": "other"}, "chunking_strategy.type"),
    ],
)
def test_chunking_bounds(strategy: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as bad:
        check_chunking(strategy)
    assert bad.value.param == param
    assert check_chunking(None)["static"] == {
        "max_chunk_size_tokens": 800,
        "chunk_overlap_tokens": 400,
    }


ROWS = [
    {"id": 1, "attributes": {"author": "ann", "year": 2020, "draft": True}},
    {"id": 2, "attributes": {"author": "bob", "year": 2024, "draft": False}},
    {"id": 3, "attributes": {"author": "cy", "year": "2024"}},
    {"id": 4, "attributes": None},
]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "eq", "key": "author", "value": "bob"}, {2}),
        ({"type": "ne", "key": "author", "value": "bob"}, {1, 3, 4}),
        ({"type": "gte", "key": "year", "value": 2021}, {2}),  # "2024" is a string
        ({"type": "lt", "key": "year", "value": 2024}, {1}),
        ({"type": "in", "key": "author", "value": ["ann", "cy"]}, {1, 3}),
        ({"type": "nin", "key": "author", "value": ["ann", "cy"]}, {2, 4}),
        ({"type": "eq", "key": "draft", "value": True}, {1}),
        (
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "author", "value": "cy"},
                    {
                        "type": "and",
                        "filters": [
                            {"type": "gt", "key": "year", "value": 2000},
                            {"type": "eq", "key": "draft", "value": False},
                        ],
                    },
                ],
            },
            {2, 3},
        ),
    ],
)
def test_filters_run_in_sqlite(spec: dict[str, Any], expected: set[int]) -> None:
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer), Column("attributes", JSON, nullable=True))
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), ROWS)
        condition = to_sql(check_filter(spec, "filters"), table.c.attributes, "sqlite")
        found = set(conn.execute(select(table.c.id).where(condition)).scalars())
    assert found == expected


def test_bad_filters_name_their_path() -> None:
    with pytest.raises(InvalidRequestError) as bad:
        check_filter({"type": "and", "filters": [{"type": "in", "key": "a", "value": 1}]}, "f")
    assert bad.value.param == "f.filters[0].value"
    with pytest.raises(InvalidRequestError) as bad:
        check_filter({"type": "near", "key": "a", "value": 1}, "f")
    assert bad.value.param == "f.type"


def test_vector_top_matches_brute_force_and_fusion_is_bounded() -> None:
    rng = np.random.default_rng(7)
    vectors = unit_rows(rng.standard_normal((500, 16)).astype(np.float32))
    rows = [(i + 10, f"file-{i % 7}", to_blob(v), f"text {i}") for i, v in enumerate(vectors)]
    index = VectorIndex.build(rows, 16)
    query = unit_rows(rng.standard_normal((1, 16)).astype(np.float32))[0]
    brute = np.argsort(-(vectors @ query))[:10] + 10
    assert [pk for pk, _ in index.top(query, None, 10)] == list(brute)
    only = index.top(query, index.mask({"file-3"}), 5)
    assert len(only) == 5 and all((pk - 10) % 7 == 3 for pk, _ in only)
    assert index.chunk(17) == ("file-0", "text 7")
    fused = fuse([[1, 2, 3], [1, 3]], [1.0, 1.0])
    assert fused[0] == (1, 1.0) and all(0 < s <= 1 for _, s in fused)


def test_keyword_ranks_equal_fts5_bm25() -> None:
    """The in-memory BM25 ranks chunks as SQLite FTS5's own bm25() does on the same texts
    (same tokenizer, stemming included), and honours the mask."""
    import random
    import sqlite3

    words = [
        "river",
        "rivers",
        "running",
        "runs",
        "bridge",
        "city",
        "mayor",
        "budget",
        "bread",
        "school",
        "harbour",
    ]
    rng = random.Random(3)
    texts = [" ".join(rng.choices(words, k=rng.randint(3, 30))) for _ in range(300)]
    texts += ["The Harbour bridge", "", "naïve café"]
    index = KeywordIndex.build(texts)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61')")
    conn.executemany("INSERT INTO t (rowid, text) VALUES (?, ?)", enumerate(texts))
    for query in ("rivers run", "harbour", "BRIDGE budget school mayor", "cafe", "nothing"):
        terms = query_terms(query)
        match = " OR ".join(f'"{t}"' for t in terms)
        expected = conn.execute(
            "SELECT rowid, bm25(t) FROM t WHERE t MATCH ? ORDER BY bm25(t), rowid", (match,)
        ).fetchall()
        scores = index.scores(terms)
        got = sorted(np.flatnonzero(scores > 0), key=lambda i: (-scores[i], i))
        assert [int(i) for i in got] == [r for r, _ in expected], query
        # FTS5's bm25() is the negated score.
        assert np.allclose([-scores[r] for r, _ in expected], [s for _, s in expected], rtol=1e-4)
    rows = [(i, f"f{i % 2}", to_blob(np.ones(2, np.float32)), t) for i, t in enumerate(texts)]
    vectors = VectorIndex.build(rows, 2)
    odd = vectors.keyword_top(["harbour"], vectors.mask({"f1"}), 500)
    even = vectors.keyword_top(["harbour"], vectors.mask({"f0"}), 500)
    assert odd and all(pk % 2 == 1 for pk in odd) and all(pk % 2 == 0 for pk in even)
    assert set(odd) | set(even) == set(vectors.keyword_top(["harbour"], None, 500))


def test_query_terms_do_not_carry_over_between_queries_or_threads() -> None:
    """Queries are tokenized in one FTS5 table per thread, emptied for each query."""
    from concurrent.futures import ThreadPoolExecutor

    assert query_terms("Rivers running under the bridges") == [
        "bridg",
        "river",
        "run",
        "the",
        "under",
    ]
    assert query_terms("harbour") == ["harbour"]
    assert query_terms("") == []
    assert query_terms("naïve CAFÉ café") == ["cafe", "naiv"]
    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(query_terms, ["mayor budget", "school", "mayor budget"] * 20))
    assert found == [["budget", "mayor"], ["school"], ["budget", "mayor"]] * 20
