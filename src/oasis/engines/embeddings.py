"""The sentence-transformers embedding engine (any sentence-transformers model directory).

The model runs on torch (CPU) in one worker thread per model, so batches never overlap and
the event loop stays free. The engine takes token ids rather than text: the service has
already tokenized (it needs the counts for limits and ``usage``), and client token arrays
take the same path. The padded tensors it builds are exactly what the model's own
``preprocess`` would give, so vectors match ``SentenceTransformer.encode``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oasis.config import Settings
from oasis.errors import ModelUnavailableError, OasisError
from oasis.models.assets import resolve_source
from oasis.models.specs import ModelSpec

log = logging.getLogger(__name__)

# The tensors a text model's forward pass reads; anything else ``preprocess`` returns (such
# as ``modality``) is copied unchanged from a probe made at load time.
_TOKEN_FEATURES = ("input_ids", "attention_mask", "token_type_ids")
# The fixed cost of one forward pass, in token positions: on CPU a pass costs about as
# much as 32 more positions (MiniLM on 2 cores: 8 ms for one 32-token input, 34 ms for
# eight). See :func:`plan_passes`.
PASS_COST_TOKENS = 32
MAX_PASS_ROWS = 64
# The first window tried when only the first tokens of a long text are wanted (see
# ``tokenize``): wide enough that one step usually suffices, English runs 4-5 per token.
_CHARS_PER_TOKEN = 8
# Tokenizer parts that treat the text a character at a time (normalizers) or split words
# at every space (pre-tokenizers), so no token spans a space that follows a word.
_LOCAL_NORMALIZERS = frozenset(
    {"BertNormalizer", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents"}
)
_SPACE_SPLITTERS = frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "ByteLevel"})
_SPACE_AFTER_WORD = re.compile(r"(?<=\S) ")


def _offline() -> None:
    """Never reach for a model hub: every file is local. ``setdefault`` lets a user opt out."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class SentenceTransformerEngine:
    """An :class:`~oasis.engines.base.EmbeddingEngine` over one ``SentenceTransformer``."""

    def __init__(self, spec: ModelSpec, path: Path, settings: Settings) -> None:
        _offline()
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelUnavailableError(
                f"The sentence-transformers engine needs torch and sentence-transformers "
                f"({exc}). Install them with: pip install 'oasis[embeddings]'"
            ) from exc
        self._torch = torch
        self.spec = spec
        threads = int(spec.options.get("threads", settings.threads))
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            model = SentenceTransformer(
                str(path), device="cpu", local_files_only=True, backend="torch"
            )
        except Exception as exc:  # torch, transformers and the hub client raise many types
            raise ModelUnavailableError(
                f"sentence-transformers could not load `{spec.id}` from {path}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        model.eval()
        self._model = model
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None or not callable(tokenizer):
            raise ModelUnavailableError(
                f"`{spec.id}` at {path} has no text tokenizer; only text embedding models "
                "can serve /v1/embeddings."
            )
        self._tokenizer = tokenizer
        # Fast tokenizers may raise "Already borrowed" when two threads use one at once.
        self._tokenizer_lock = threading.Lock()
        self._cuts_at_spaces = _cuts_at_spaces(tokenizer)
        self._prefix, self._suffix = self._special_tokens()
        self._pad_id = int(tokenizer.pad_token_id or 0)
        self._extras, self._features = self._probe()
        dimensions = model.get_embedding_dimension()
        if not dimensions:
            raise ModelUnavailableError(f"`{spec.id}` does not declare its embedding size.")
        self.dimensions = int(dimensions)
        self.max_input_tokens = self._max_tokens(model, tokenizer)
        self.vocab_size = len(tokenizer)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"embed-{spec.id}")

    # --- set-up --------------------------------------------------------------------

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer puts before and after one input (``[CLS]`` … ``[SEP]``)."""
        bare = self._tokenizer("a", add_special_tokens=False)["input_ids"]
        full = self._tokenizer("a", add_special_tokens=True)["input_ids"]
        for start in range(len(full) - len(bare) + 1):
            if full[start : start + len(bare)] == bare:
                return list(full[:start]), list(full[start + len(bare) :])
        return [], []

    def _probe(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Which tensors the forward pass wants, and the non-tensor keys to copy along."""
        features = self._model.preprocess(["a"])
        extras = {k: v for k, v in features.items() if not isinstance(v, self._torch.Tensor)}
        tensors = tuple(k for k in _TOKEN_FEATURES if k in features)
        if "input_ids" not in tensors or "attention_mask" not in tensors:
            raise ModelUnavailableError(
                f"`{self.spec.id}` does not take token ids; it cannot embed text here."
            )
        unknown = [k for k, v in features.items() if k not in tensors and k not in extras]
        if unknown:
            raise ModelUnavailableError(
                f"`{self.spec.id}` needs inputs this engine does not build: {unknown}."
            )
        return extras, tensors

    def _max_tokens(self, model: Any, tokenizer: Any) -> int:
        configured = self.spec.options.get("max_input_tokens")
        limit = configured or getattr(model, "max_seq_length", None) or tokenizer.model_max_length
        positions = getattr(getattr(model[0], "auto_model", None), "config", None)
        positions = getattr(positions, "max_position_embeddings", None)
        if positions:  # a configured limit past the position table would crash the forward
            limit = min(int(limit), int(positions))
        return int(limit)

    # --- EmbeddingEngine -----------------------------------------------------------

    def tokenize(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        """Token ids for each text, without special tokens; see the protocol for ``limit``.

        A long text is tokenized a prefix at a time, cut at a space, growing until the
        prefix alone has more than ``limit`` tokens; with a tokenizer whose words never
        span a space, a prefix's tokens are the first tokens of the whole.
        """
        if limit is None or not self._cuts_at_spaces:
            return self._encode(texts)
        window = (limit + 1) * _CHARS_PER_TOKEN
        short = [i for i, text in enumerate(texts) if len(text) <= window]
        result: list[list[int]] = [[] for _ in texts]
        for i, ids in zip(short, self._encode([texts[i] for i in short]), strict=True):
            result[i] = ids
        for i, text in enumerate(texts):
            if len(text) > window:
                result[i] = self._first_tokens(text, limit, window)
        return result

    def _first_tokens(self, text: str, limit: int, size: int) -> list[int]:
        """More than ``limit`` of ``text``'s first tokens, or all of them."""
        while True:
            cut = _space_after(text, size)
            if cut is None:
                return self._encode([text])[0]
            ids = self._encode([text[:cut]])[0]
            if len(ids) > limit:
                return ids
            size = cut * 2

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:  # the tokenizer fails on an empty batch
            return []
        with self._tokenizer_lock:
            encoded = self._tokenizer(texts, add_special_tokens=False, verbose=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def with_special_tokens(self, tokens: list[int]) -> list[int]:
        """``tokens`` between the model's start and end markers."""
        return [*self._prefix, *tokens, *self._suffix]

    async def embed(self, batch: list[list[int]]) -> NDArray[np.float32]:
        """One vector per input; see :class:`~oasis.engines.base.EmbeddingEngine`."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._forward, batch)
        except OasisError:
            raise
        except Exception as exc:  # a runtime failure is ours, never the client's
            log.exception("embedding forward pass failed")
            raise OasisError(f"The embedding model failed: {type(exc).__name__}: {exc}") from exc

    def _forward(self, batch: list[list[int]]) -> NDArray[np.float32]:
        """Vectors for ``batch``, in forward passes of inputs of similar length."""
        order = sorted(range(len(batch)), key=lambda i: -len(batch[i]))
        result: NDArray[np.float32] = np.empty((len(batch), self.dimensions), dtype=np.float32)
        for rows in plan_passes([len(batch[i]) for i in order]):
            chosen = order[rows]
            result[chosen] = self._forward_padded([batch[i] for i in chosen])
        return result

    def _forward_padded(self, batch: list[list[int]]) -> NDArray[np.float32]:
        torch = self._torch
        longest = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), longest), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        tensors = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(mask),
            "token_type_ids": torch.zeros_like(torch.from_numpy(input_ids)),
        }
        features: dict[str, Any] = {k: tensors[k] for k in self._features}
        features.update(self._extras)
        with torch.inference_mode():
            vectors = self._model(features)["sentence_embedding"]
        result: NDArray[np.float32] = vectors.float().cpu().numpy()
        return result

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _space_after(text: str, start: int) -> int | None:
    """The position of the first space at or after ``start`` that ends a word."""
    found = _SPACE_AFTER_WORD.search(text, max(start, 1))
    return found.start() if found else None


def _cuts_at_spaces(tokenizer: Any) -> bool:
    """Whether a text cut at a space after a word tokenizes as the whole text begins.

    True for the usual fast tokenizers (BERT WordPiece, byte-level BPE); anything unknown
    (a regex split, a normalizer that rewrites runs of text) is tokenized whole instead.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    try:
        config = json.loads(backend.to_str())
    except (AttributeError, TypeError, ValueError):
        return False

    def parts(node: Any, key: str) -> list[Any]:
        if node is None:
            return []
        if node.get("type") == "Sequence":
            return [p for child in node.get(key) or [] for p in parts(child, key)]
        return [node]

    normalizers = parts(config.get("normalizer"), "normalizers")
    pre = parts(config.get("pre_tokenizer"), "pretokenizers")
    return (
        all(n.get("type") in _LOCAL_NORMALIZERS for n in normalizers)
        and bool(pre)
        and all(
            p.get("type") in _SPACE_SPLITTERS
            and (p.get("type") != "ByteLevel" or p.get("use_regex", True))
            for p in pre
        )
        and not any(" " in str(t.get("content", "")) for t in config.get("added_tokens") or [])
    )


def plan_passes(lengths: list[int], pass_cost: int = PASS_COST_TOKENS) -> list[slice]:
    """Cut inputs sorted longest first into forward passes, padding as little as pays.

    A pass costs ``pass_cost`` plus its rows times its longest input (padding costs as much
    as real tokens). A batch gathered from concurrent requests mixes lengths freely, and
    padding every row to the longest wastes about a third of the work; one pass per input
    wastes the fixed cost instead. The cheapest cut is found exactly, over passes of at
    most :data:`MAX_PASS_ROWS` rows (bigger ones gain nothing on CPU).
    """
    count = len(lengths)
    best = [0.0] + [math.inf] * count  # best[i]: the cheapest way to run the first i rows
    start_of = [0] * (count + 1)
    for end in range(1, count + 1):
        for start in range(max(0, end - MAX_PASS_ROWS), end):
            cost = best[start] + pass_cost + (end - start) * lengths[start]
            if cost < best[end]:
                best[end], start_of[end] = cost, start
    passes: list[slice] = []
    end = count
    while end > 0:
        passes.append(slice(start_of[end], end))
        end = start_of[end]
    return passes[::-1]


def create_engine(spec: ModelSpec, settings: Settings) -> SentenceTransformerEngine:
    return SentenceTransformerEngine(spec, resolve_source(spec, settings.data_dir), settings)
