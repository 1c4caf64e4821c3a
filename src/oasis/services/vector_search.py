"""Hybrid search over one vector store: dense vectors plus keywords, fused by rank.

Each store's chunks are held in memory per process (:class:`VectorIndex`: one float32
matrix of unit vectors and BM25 keyword postings), loaded on the first search and
reloaded when the store's ``generation`` in the database changes (every write of chunks
bumps it, so every replica sees another's ingestion; the caller reads it with the store).
A filtered search asks the database which files pass (``filters`` run in SQL) and masks
the rest. The index holds file names and attributes too, so changing attributes bumps
the generation as well. See :mod:`oasis.retrieval.ranking` for how scores are made.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oasis.retrieval.keywords import query_terms
from oasis.retrieval.ranking import (
    CANDIDATES_PER_RESULT,
    Ranking,
    VectorIndex,
    fuse,
    unit_rows,
)
from oasis.services.embeddings import EmbeddingService
from oasis.store.vector_stores import ChunkHit, FileLabel, VectorStoreRepository

# Words a rewritten query drops: they carry no meaning for retrieval.
_STOPWORDS = frozenset(
    {
        *("a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "did", "do"),
        *("does", "for", "from", "had", "has", "have", "how", "i", "in", "is", "it", "its"),
        *("me", "my", "of", "on", "or", "please", "tell", "that", "the", "their", "there"),
        *("these", "this", "to", "was", "what", "when", "where", "which", "who", "whom"),
        *("why", "will", "with", "would", "you", "your", "about", "find", "show", "give"),
    }
)


# The most memory the stores' indexes hold in one process (about 600,000 chunks of
# 384-dimensional vectors with their texts).
CACHE_BYTES = 1 << 30


@dataclass(frozen=True)
class Hit:
    chunk: ChunkHit
    score: float


def rewrite(query: str) -> str:
    """The query reduced to its content words (``rewrite_query``); unchanged if that
    would leave nothing."""
    words = [w for w in re.findall(r"[\w'-]+", query) if w.lower() not in _STOPWORDS]
    return " ".join(words) if words else query


class VectorSearch:
    """Searches stores; holds each store's vectors while its generation is current."""

    def __init__(
        self, repo: VectorStoreRepository, embeddings: EmbeddingService, model: str | None
    ) -> None:
        self.repo = repo
        self.embeddings = embeddings
        self.model = model
        self._indexes: dict[str, tuple[int, VectorIndex, dict[str, FileLabel]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def index(
        self, store_id: str, generation: int
    ) -> tuple[VectorIndex, dict[str, FileLabel]]:
        """The store's chunks and its files' labels as of ``generation`` or later (loaded
        if the one held is older: generations only grow)."""
        cached = self._indexes.pop(store_id, None)
        if cached is not None:
            self._indexes[store_id] = cached  # most recently used last
            if cached[0] >= generation:
                return cached[1], cached[2]
        lock = self._locks.setdefault(store_id, asyncio.Lock())
        async with lock:
            cached = self._indexes.get(store_id)
            if cached is not None and cached[0] >= generation:
                return cached[1], cached[2]
            rows, labels = await self.repo.index_rows(store_id)
            dimensions = len(rows[0][2]) // 4 if rows else 1
            index = await asyncio.to_thread(VectorIndex.build, rows, dimensions)
            self._indexes.pop(store_id, None)
            self._indexes[store_id] = (generation, index, labels)
            self._evict()
            return index, labels

    def _evict(self) -> None:
        # Another replica's deleted stores, and stores no longer searched, leave memory
        # least recently used first; the store just loaded always stays.
        held = sum(entry[1].nbytes for entry in self._indexes.values())
        for store_id in list(self._indexes)[:-1]:
            if held <= CACHE_BYTES:
                break
            held -= self._indexes.pop(store_id)[1].nbytes
            self._locks.pop(store_id, None)

    def forget(self, store_id: str) -> None:
        self._indexes.pop(store_id, None)
        self._locks.pop(store_id, None)

    async def search(
        self,
        store_id: str,
        generation: int,
        queries: list[str],
        *,
        filters: dict[str, Any] | None,
        limit: int,
        ranking: Ranking,
    ) -> list[Hit]:
        """The best ``limit`` chunks for ``queries``, best first, scores in [0, 1]."""
        vectors = unit_rows(await self.embeddings.embed_texts(queries, self.model))
        return await self.search_vectors(
            store_id, generation, queries, vectors, filters=filters, limit=limit, ranking=ranking
        )

    async def search_vectors(
        self,
        store_id: str,
        generation: int,
        queries: list[str],
        vectors: NDArray[np.float32],
        *,
        filters: dict[str, Any] | None,
        limit: int,
        ranking: Ranking,
    ) -> list[Hit]:
        """:meth:`search` with the queries' unit vectors already made."""
        allowed = None
        if filters is not None:
            allowed = await self.repo.matching_files(store_id, filters)
            if not allowed:
                return []
        # Without a filter every indexed chunk may be returned: chunks are written in the
        # transaction that completes their file and dropped with it.
        index, labels = await self.index(store_id, generation)
        mask = index.mask(allowed)
        depth = max(limit * CANDIDATES_PER_RESULT, 20)
        dense = [index.top(v, mask, depth) for v in vectors]
        if ranking.hybrid:
            lists: list[list[int]] = []
            weights: list[float] = []
            for query, found in zip(queries, dense, strict=True):
                words = index.keyword_top(query_terms(query), mask, depth)
                lists += [[pk for pk, _ in found], words]
                weights += [ranking.embedding_weight, ranking.text_weight]
            scored = fuse(lists, weights)
        else:
            best: dict[int, float] = {}
            for found in dense:
                for pk, similarity in found:
                    best[pk] = max(best.get(pk, 0.0), max(similarity, 0.0))
            scored = sorted(best.items(), key=lambda cs: -cs[1])
        scored = [(pk, min(score, 1.0)) for pk, score in scored if score >= ranking.score_threshold]
        hits = []
        for pk, score in scored[:limit]:
            file_id, text = index.chunk(pk)
            label = labels.get(file_id)
            if label is None:  # detached while the index loaded; the next search reloads
                continue
            hits.append(Hit(ChunkHit(pk, file_id, label.filename, label.attributes, text), score))
        return hits
