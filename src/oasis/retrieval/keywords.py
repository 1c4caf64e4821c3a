"""Keyword ranking (BM25) over one store's chunks, held in memory beside its vectors.

Words are cut and stemmed by SQLite FTS5's own ``porter unicode61`` tokenizer (texts go
into a private in-memory FTS5 table and come back as terms through ``fts5vocab``), so a
query matches the same words on every database. Scores follow FTS5's ``bm25()``:
``k1 = 1.2``, ``b = 0.75``, IDF ``log((N - n + 0.5) / (n + 0.5))`` floored at 1e-6, with
``N`` and the average length taken over the store.

Why not rank in the database: with common query words nearly every chunk matches, and
ranking each match in SQL (FTS5 ``bm25``, PostgreSQL ``ts_rank_cd``) cost 30-120 ms at
10,000 chunks on the benchmark machine, while summing the query terms' postings here
costs well under a millisecond.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

K1 = 1.2
B = 0.75
_MIN_IDF = 1e-6
TOKENIZER = "porter unicode61"


def _vocabulary(texts: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(term, text position, count)`` for every term of every text."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize='{TOKENIZER}')")
        conn.executemany("INSERT INTO t (rowid, text) VALUES (?, ?)", enumerate(texts))
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        rows = conn.execute("SELECT term, doc, count(*) FROM v GROUP BY term, doc").fetchall()
    finally:
        conn.close()
    return [(str(term), int(doc), int(count)) for term, doc, count in rows]


class _QueryTokenizer(threading.local):
    """One contentless FTS5 table per thread that tokenizes a query at a time: opening a
    database and creating the tables for each query cost about ten times the query's own
    tokenizing. ``delete-all`` empties a contentless table's index outright, so it never
    grows however many queries pass through."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute(
            f"CREATE VIRTUAL TABLE q USING fts5(text, content='', tokenize='{TOKENIZER}')"
        )
        self.conn.execute("CREATE VIRTUAL TABLE q_terms USING fts5vocab(q, 'row')")

    def terms(self, text: str) -> list[str]:
        with self.conn:
            self.conn.execute("INSERT INTO q (q) VALUES ('delete-all')")
            self.conn.execute("INSERT INTO q (rowid, text) VALUES (1, ?)", (text,))
            return [str(row[0]) for row in self.conn.execute("SELECT term FROM q_terms")]


_tokenizer = _QueryTokenizer()


def query_terms(text: str) -> list[str]:
    """The distinct terms of ``text`` as the tokenizer makes them, in sorted order."""
    return sorted(_tokenizer.terms(text))


@dataclass(frozen=True)
class KeywordIndex:
    """Postings of each term: the chunks (by position) holding it and their BM25 weight
    (without IDF), laid out term after term."""

    terms: dict[str, int]  # term -> its row in starts / idf
    starts: NDArray[np.int64]  # postings of term t: starts[t]:starts[t + 1]
    chunks: NDArray[np.int32]
    weights: NDArray[np.float64]
    idf: NDArray[np.float64]
    size: int

    @classmethod
    def build(cls, texts: Sequence[str]) -> KeywordIndex:
        """The index of ``texts`` (chunk positions are their positions here)."""
        rows = sorted(_vocabulary(texts))
        size = len(texts)
        lengths = np.zeros(size, np.float64)
        terms: dict[str, int] = {}
        term_of = np.empty(len(rows), np.int64)
        chunks = np.empty(len(rows), np.int32)
        counts = np.empty(len(rows), np.float64)
        for i, (term, chunk, count) in enumerate(rows):
            term_of[i] = terms.setdefault(term, len(terms))
            chunks[i] = chunk
            counts[i] = count
        np.add.at(lengths, chunks, counts)
        average = float(lengths.mean()) if size and lengths.any() else 1.0
        norm = K1 * (1 - B + B * lengths[chunks] / average)
        weights = counts * (K1 + 1) / (counts + norm)
        frequency = np.bincount(term_of, minlength=len(terms))
        starts = np.concatenate(([0], np.cumsum(frequency))).astype(np.int64)
        idf = np.array(
            [max(math.log((size - n + 0.5) / (n + 0.5)), _MIN_IDF) for n in frequency],
            np.float64,
        )
        return cls(terms, starts, chunks, weights, idf, size)

    def scores(self, terms: Sequence[str]) -> NDArray[np.float64]:
        """Each chunk's BM25 score for a query of ``terms`` (0 where none occurs)."""
        rows = [row for row in map(self.terms.get, terms) if row is not None]
        if not rows:
            return np.zeros(self.size, np.float64)
        spans = [slice(self.starts[row], self.starts[row + 1]) for row in rows]
        chunks = np.concatenate([self.chunks[span] for span in spans])
        parts = np.concatenate(
            [self.idf[row] * self.weights[span] for row, span in zip(rows, spans, strict=True)]
        )
        # One pass over every query term's postings, term after term: each chunk's sum
        # is added up in the order a loop over the terms would add it.
        return np.bincount(chunks, parts, minlength=self.size).astype(np.float64, copy=False)
