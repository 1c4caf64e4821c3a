"""Hybrid ranking: dense vectors scored by a numpy scan, keyword ranks by BM25 over
in-memory postings (:mod:`oasis.retrieval.keywords`), fused by reciprocal rank.

Scores are in [0, 1]. With fusion, a chunk's score is its fused reciprocal-rank score over
the best possible one (first in every list), so 1.0 means "first by meaning and by
words"; with the ranker ``none``, the score is the cosine similarity, clipped at 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oasis.errors import InvalidRequestError
from oasis.retrieval.keywords import KeywordIndex

# The usual reciprocal-rank constant: ranks past the first few count for little.
RRF_K = 60
# How many candidates each list contributes to the fusion, per result asked for.
CANDIDATES_PER_RESULT = 4


@dataclass(frozen=True)
class Ranking:
    """How results are ranked: fused (``hybrid``) or by vector similarity alone."""

    hybrid: bool = True
    embedding_weight: float = 1.0
    text_weight: float = 1.0
    score_threshold: float = 0.0


def ranking_of(options: dict[str, Any] | None, param: str) -> Ranking:
    """``ranking_options`` (of a search or a file_search tool) as a :class:`Ranking`."""
    options = options or {}
    ranker = options.get("ranker") or "auto"
    if ranker not in {"none", "auto", "default-2024-11-15"}:
        raise _bad(f"{param}.ranker", f"{ranker!r} is not 'none', 'auto' or 'default-2024-11-15'")
    threshold = _number(options.get("score_threshold", 0.0), f"{param}.score_threshold")
    if not 0 <= threshold <= 1:
        raise _bad(f"{param}.score_threshold", "must be between 0 and 1")
    hybrid = options.get("hybrid_search") or {}
    if not isinstance(hybrid, dict):
        raise _bad(f"{param}.hybrid_search", "expected an object")
    weights = [
        _number(hybrid.get(name, 1.0), f"{param}.hybrid_search.{name}")
        for name in ("embedding_weight", "text_weight")
    ]
    if min(weights) < 0 or sum(weights) <= 0:
        raise _bad(f"{param}.hybrid_search", "weights are non-negative and not both 0")
    return Ranking(ranker != "none", weights[0], weights[1], threshold)


def _bad(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid value for '{param}': {message}.", param=param, code="invalid_value"
    )


def _number(value: Any, param: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise _bad(param, "expected a number")
    return float(value)


def unit_rows(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each row scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


def to_blob(vector: NDArray[np.float32]) -> bytes:
    return vector.astype("<f4", copy=False).tobytes()


@dataclass(frozen=True)
class VectorIndex:
    """The chunks of one vector store, in memory: ids, the file each belongs to, unit
    vectors (one float32 matrix), texts and keyword postings."""

    chunk_ids: NDArray[np.int64]
    file_ids: tuple[str, ...]  # by file position
    file_of: NDArray[np.int32]  # each chunk's file position
    vectors: NDArray[np.float32]
    texts: tuple[str, ...]
    keywords: KeywordIndex
    positions: dict[int, int]  # chunk id -> its row

    @classmethod
    def build(cls, rows: Sequence[tuple[int, str, bytes, str]], dimensions: int) -> VectorIndex:
        """From ``(chunk id, file id, float32 blob, text)`` rows."""
        positions: dict[str, int] = {}
        file_of = np.fromiter(
            (positions.setdefault(row[1], len(positions)) for row in rows), np.int32, len(rows)
        )
        vectors = np.frombuffer(b"".join(row[2] for row in rows), dtype="<f4")
        texts = tuple(row[3] for row in rows)
        return cls(
            np.fromiter((row[0] for row in rows), np.int64, len(rows)),
            tuple(positions),
            file_of,
            vectors.reshape(len(rows), dimensions).astype(np.float32, copy=False),
            texts,
            KeywordIndex.build(texts),
            {row[0]: i for i, row in enumerate(rows)},
        )

    def chunk(self, chunk_id: int) -> tuple[str, str]:
        """The file id and text of a chunk."""
        row = self.positions[chunk_id]
        return self.file_ids[self.file_of[row]], self.texts[row]

    @property
    def nbytes(self) -> int:
        """About how much memory the index holds."""
        k = self.keywords
        arrays = (self.chunk_ids, self.file_of, self.vectors, k.chunks, k.weights, k.starts)
        return sum(a.nbytes for a in arrays) + sum(len(t) for t in self.texts)

    def mask(self, allowed: set[str] | None) -> NDArray[np.bool_] | None:
        """Which chunks belong to ``allowed`` files (None: every chunk may be returned)."""
        if allowed is None:
            return None
        keep = np.fromiter((f in allowed for f in self.file_ids), bool, len(self.file_ids))
        result: NDArray[np.bool_] = keep[self.file_of]
        return result

    def top(
        self, query: NDArray[np.float32], mask: NDArray[np.bool_] | None, k: int
    ) -> list[tuple[int, float]]:
        """The ``k`` chunks most similar to the unit vector ``query``: (chunk id, cosine),
        best first, among the chunks ``mask`` keeps (None: every chunk)."""
        if not len(self.chunk_ids) or k <= 0:
            return []
        # einsum runs on this thread: a BLAS product would wake BLAS's thread pool, which
        # on a busy machine made one 10,000-row scan several times slower.
        scores: NDArray[np.float32] = np.einsum("ij,j->i", self.vectors, query)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        return [(int(self.chunk_ids[i]), float(scores[i])) for i in _best(scores, k)]

    def keyword_top(
        self, terms: Sequence[str], mask: NDArray[np.bool_] | None, k: int
    ) -> list[int]:
        """Chunk ids best first by BM25 for any of ``terms``, among those ``mask`` keeps."""
        if not len(self.chunk_ids) or k <= 0 or not terms:
            return []
        scores = self.keywords.scores(terms)
        keep = scores > 0 if mask is None else (scores > 0) & mask
        scores = np.where(keep, scores, -np.inf)
        return [int(self.chunk_ids[i]) for i in _best(scores, k)]


def _best(scores: NDArray[np.floating[Any]], k: int) -> list[int]:
    """Positions of the ``k`` highest finite scores, best first (ties by position)."""
    k = min(k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.lexsort((best, -scores[best]))]
    return [int(i) for i in best if np.isfinite(scores[i])]


def fuse(
    ranked: Sequence[Sequence[int]], weights: Sequence[float], k: int = RRF_K
) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of lists of chunk ids (best first), scores in [0, 1]."""
    total = sum(weights)
    if total <= 0:
        return []
    best = total / (k + 1)
    scores: dict[int, float] = {}
    for items, weight in zip(ranked, weights, strict=True):
        for rank, chunk in enumerate(items):
            scores[chunk] = scores.get(chunk, 0.0) + weight / (k + rank + 1)
    return sorted(((c, s / best) for c, s in scores.items()), key=lambda cs: -cs[1])
