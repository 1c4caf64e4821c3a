"""Hybrid search over one vector store: dense vectors plus keywords, fused by rank.

The files a search may return are chosen in the database (completed files whose
attributes pass the filter); each query's vector is scored against the store's chunks in
one numpy product (the store's vectors are cached per process and reloaded when the
store's ``generation`` changes, so every replica sees new chunks); keyword ranks come
from SQLite FTS5 or PostgreSQL full-text search. See :mod:`oasis.retrieval.ranking` for
how scores are made.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oasis.retrieval.ranking import (
    CANDIDATES_PER_RESULT,
    Ranking,
    VectorIndex,
    fuse,
    keywords,
    unit_rows,
)
from oasis.services.embeddings import EmbeddingService
from oasis.store.vector_stores import ChunkHit, VectorStoreRepository

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
        self._indexes: dict[str, tuple[int, VectorIndex]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def index(self, store_id: str, generation: int) -> VectorIndex:
        cached = self._indexes.get(store_id)
        if cached is not None and cached[0] == generation:
            return cached[1]
        lock = self._locks.setdefault(store_id, asyncio.Lock())
        async with lock:
            cached = self._indexes.get(store_id)
            if cached is not None and cached[0] == generation:
                return cached[1]
            rows = await self.repo.index_rows(store_id)
            dimensions = len(rows[0][2]) // 4 if rows else 1
            index = await asyncio.to_thread(VectorIndex.build, rows, dimensions)
            self._indexes[store_id] = (generation, index)
            return index

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
        allowed = await self.repo.matching_files(store_id, filters)
        if not allowed:
            return []
        index = await self.index(store_id, generation)
        depth = max(limit * CANDIDATES_PER_RESULT, 20)
        everything = allowed if filters is not None else None
        dense = [index.top(v, everything, depth) for v in vectors]
        if ranking.hybrid:
            lists: list[list[int]] = []
            weights: list[float] = []
            for query, found in zip(queries, dense, strict=True):
                words = await self.repo.keyword_ranks(store_id, keywords(query), everything, depth)
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
        scored = scored[:limit]
        chunks = await self.repo.chunks(store_id, [pk for pk, _ in scored])
        return [Hit(chunks[pk], score) for pk, score in scored if pk in chunks]
