"""Embeddings: validate the request, tokenize, batch across requests, encode the vectors.

Every input of every request goes through one :class:`MicroBatcher` per model. Concurrent
one-sentence requests are gathered into one forward pass (waiting at most
``max_batch_wait_ms`` for company when the model is idle), and a big request is cut into
batches of ``batch_size``, longest inputs first so each batch pads little.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from openai.types import CreateEmbeddingResponse, Embedding
from openai.types.create_embedding_response import Usage

from oasis.caller import UsageEntry, record_usage
from oasis.config import EmbeddingsSettings
from oasis.engines.base import EmbeddingEngine, EmbeddingRelay
from oasis.errors import InvalidRequestError, OverloadedError, UnsupportedError
from oasis.models.registry import ResolvedModel
from oasis.models.specs import ModelSpec
from oasis.retrieval.chunking import CountTokens
from oasis.services.models import ModelManager
from oasis.services.openai_tokens import decode_tokens, openai_encoding
from oasis.wire.embeddings import EmbeddingInputs, EmbeddingRequest

log = logging.getLogger(__name__)

# Tokenizing this much text inline would hold up the event loop; past it, use a thread.
_INLINE_TOKENIZE_CHARS = 4096


@dataclass(frozen=True)
class BatchPolicy:
    """How one model's batcher gathers inputs."""

    batch_size: int
    max_wait_s: float
    max_pending: int


class _Pending:
    """One request's inputs in flight: rows fill in as their batches finish."""

    __slots__ = ("future", "vectors", "remaining")

    def __init__(self, count: int, dimensions: int, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.vectors: NDArray[np.float32] = np.empty((count, dimensions), dtype=np.float32)
        self.remaining = count

    def put(self, index: int, row: NDArray[np.float32]) -> None:
        if self.future.done():
            return
        self.vectors[index] = row
        self.remaining -= 1
        if self.remaining == 0:
            self.future.set_result(self.vectors)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


@dataclass(frozen=True, slots=True)
class _Item:
    request: _Pending
    index: int
    tokens: list[int]
    arrival: float


class MicroBatcher:
    """Gathers inputs from concurrent requests into batches for one embedding engine.

    Items run first come, first served. The oldest waiting item waits at most
    ``max_wait_s`` for the batch to fill; while a batch runs, new items queue and form the
    next one, so under load batches fill without any waiting.
    """

    def __init__(self, engine: EmbeddingEngine, policy: BatchPolicy) -> None:
        self.engine = engine
        self.policy = policy
        self._queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def embed(self, inputs: list[list[int]]) -> NDArray[np.float32]:
        """Vectors for ``inputs`` (token ids with special tokens), in the order given."""
        if len(self._queue) + len(inputs) > self.policy.max_pending:
            raise OverloadedError(
                f"The model `{self.engine.spec.id}` has {len(self._queue)} inputs waiting; "
                "try again shortly."
            )
        loop = asyncio.get_running_loop()
        if self._task is not None and self._task.get_loop() is not loop:
            # A batcher used from a new event loop (a script calling asyncio.run twice):
            # whatever the old loop left behind can never be answered.
            self._queue.clear()
            self._wakeup = asyncio.Event()
            self._task = None
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=f"embed-{self.engine.spec.id}")
        pending = _Pending(len(inputs), self.engine.dimensions, loop.create_future())
        now = loop.time()
        # Longest first: consecutive items of one request are alike in length, so the
        # batches cut from them carry little padding.
        for index in sorted(range(len(inputs)), key=lambda i: -len(inputs[i])):
            self._queue.append(_Item(pending, index, inputs[index], now))
        self._wakeup.set()
        result: NDArray[np.float32] = await pending.future
        return result

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        while self._queue and len(batch) < self.policy.batch_size:
            item = self._queue.popleft()
            if not item.request.future.done():  # its client went away, or it failed
                batch.append(item)
        return batch

    async def _gather(self) -> None:
        """Wait until a batch is full or the oldest item has waited long enough."""
        loop = asyncio.get_running_loop()
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        deadline = self._queue[0].arrival + self.policy.max_wait_s
        while len(self._queue) < self.policy.batch_size:
            delay = deadline - loop.time()
            if delay <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except TimeoutError:
                return

    async def _run(self) -> None:
        while True:
            await self._gather()
            batch = self._take()
            if not batch:
                continue
            try:
                vectors = await self.engine.embed([item.tokens for item in batch])
            except Exception as exc:  # the engine translated it; every waiter gets it
                for item in batch:
                    item.request.fail(exc)
                continue
            for item, row in zip(batch, vectors, strict=True):
                item.request.put(item.index, row)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue:
            self._queue.popleft().request.fail(
                OverloadedError("The server is shutting down; try again shortly.")
            )


async def _openai_token_texts(inputs: EmbeddingInputs, resolved: ResolvedModel) -> EmbeddingInputs:
    """Token arrays sent under an OpenAI model name are OpenAI's token ids: the texts they
    spell, for a model with another vocabulary. Anything else comes back as it is."""
    encoding = openai_encoding(resolved)
    arrays = inputs.token_arrays
    if arrays is None or encoding is None:
        return inputs
    # Off the event loop: the first use loads the encoding's ranks.
    texts = await asyncio.to_thread(
        lambda: [
            decode_tokens(tokens, encoding, resolved.name, f"input[{i}]")
            for i, tokens in enumerate(arrays)
        ]
    )
    return EmbeddingInputs(texts=texts)


def _option(spec: ModelSpec, name: str, default: Any) -> Any:
    value = spec.options.get(name)
    return default if value is None else value


class EmbeddingService:
    """Turns an embeddings request into a ``CreateEmbeddingResponse``."""

    def __init__(self, models: ModelManager, settings: EmbeddingsSettings) -> None:
        self.models = models
        self.settings = settings
        self._batchers: dict[str, MicroBatcher] = {}

    async def create(self, request: EmbeddingRequest) -> CreateEmbeddingResponse:
        """Embed ``request.input``; 400 naming the parameter for anything we cannot do."""
        inputs = request.inputs()
        self._check_inputs(inputs)
        resolved, engine = await self.models.get_either(
            request.model,
            "embeddings",
            EmbeddingEngine,  # type: ignore[type-abstract]
            EmbeddingRelay,  # type: ignore[type-abstract]
        )
        spec = resolved.spec
        inputs = await _openai_token_texts(inputs, resolved)
        if isinstance(engine, EmbeddingRelay):
            # The server tokenizes, limits and shortens; what it refuses is its 400.
            answer = await engine.embed_inputs(
                inputs.texts if inputs.texts is not None else inputs.token_arrays or [],
                request.dimensions,
            )
            vectors, used = answer.vectors, answer.prompt_tokens
            if request.dimensions is not None and request.dimensions < vectors.shape[1]:
                vectors = shorten(vectors, request.dimensions)  # a server that ignored it
        else:
            dimensions = self._dimensions(request.dimensions, engine, spec)
            tokens = await self._tokens(inputs, engine, spec)
            vectors = await self._batcher(spec, engine).embed(tokens)
            if dimensions is not None and dimensions < engine.dimensions:
                vectors = shorten(vectors, dimensions)
            used = sum(len(t) for t in tokens)
        await record_usage(UsageEntry("embeddings", spec.id, input_tokens=used))
        return build_response(vectors, resolved.name, used, request.encoding_format or "float")

    async def _server_side(self, model: str | None) -> EmbeddingEngine | EmbeddingRelay:
        """The loaded engine of ``model`` (the server's default embeddings model if None)."""
        name = model or self.models.default_model("embeddings")
        _, engine = await self.models.get_either(
            name,
            "embeddings",
            EmbeddingEngine,  # type: ignore[type-abstract]
            EmbeddingRelay,  # type: ignore[type-abstract]
        )
        return engine

    async def token_counter(self, model: str | None = None) -> CountTokens:
        """What counts texts in ``model``'s tokens (blocking: call it from a thread): its
        own tokenizer, or for a remote model the one its ``tokenizer`` option names."""
        engine = await self._server_side(model)
        if isinstance(engine, EmbeddingRelay):
            relay = engine

            def count_remote(texts: list[str]) -> list[int]:
                return relay.tokens.count(texts)  # its first use loads the tokenizer

            return count_remote
        local = engine

        def count(texts: list[str]) -> list[int]:
            return [len(ids) for ids in local.tokenize(texts)]

        return count

    async def embed_texts(self, texts: list[str], model: str | None = None) -> NDArray[np.float32]:
        """Vectors for server-side texts (document chunks, search queries), each cut to
        the model's input limit, through the same batcher as ``/v1/embeddings`` (or sent
        to the model's server, cut to its ``max_input_tokens`` when that is set)."""
        engine = await self._server_side(model)
        if isinstance(engine, EmbeddingRelay):
            limit = engine.max_input_tokens
            if limit is not None:
                relay = engine

                def cut(texts: list[str], limit: int) -> list[str]:
                    # In a thread: the tokenizer's first use loads it.
                    return [relay.tokens.cut(t, limit) for t in texts]

                texts = await asyncio.to_thread(cut, texts, limit)
            return (await engine.embed_inputs(texts, None)).vectors
        within = max(engine.max_input_tokens - len(engine.with_special_tokens([])), 1)
        bare = await asyncio.to_thread(engine.tokenize, texts, within)
        inputs = [engine.with_special_tokens(tokens[:within]) for tokens in bare]
        return await self._batcher(engine.spec, engine).embed(inputs)

    # --- validation ------------------------------------------------------------------

    def _check_inputs(self, inputs: EmbeddingInputs) -> None:
        limit = self.settings.max_inputs
        if len(inputs) > limit:
            raise InvalidRequestError(
                f"'input' has {len(inputs)} items; at most {limit} inputs are allowed per request.",
                param="input",
                code="array_above_max_length",
            )
        for i, item in enumerate(inputs.texts or inputs.token_arrays or []):
            if not item:
                what = "an empty string" if inputs.texts is not None else "an empty token array"
                raise InvalidRequestError(
                    f"'input[{i}]' is {what}; every input needs at least one token.",
                    param="input",
                    code="invalid_value",
                )

    def _dimensions(
        self, asked: int | None, engine: EmbeddingEngine, spec: ModelSpec
    ) -> int | None:
        if asked is None or asked == engine.dimensions:
            return None
        if not _option(spec, "dimensions", True):
            raise UnsupportedError(
                f"The model `{spec.id}` cannot shorten its embeddings; leave out `dimensions` "
                f"or set it to {engine.dimensions}.",
                param="dimensions",
                code="unsupported_parameter",
            )
        if asked > engine.dimensions:
            raise InvalidRequestError(
                f"The model `{spec.id}` makes {engine.dimensions}-dimensional embeddings; "
                f"'dimensions' must be between 1 and {engine.dimensions}, not {asked}.",
                param="dimensions",
                code="integer_above_max_value",
            )
        return asked

    async def _tokens(
        self, inputs: EmbeddingInputs, engine: EmbeddingEngine, spec: ModelSpec
    ) -> list[list[int]]:
        """Every input as the model's token ids, special tokens added, limits enforced."""
        limit = engine.max_input_tokens
        overhead = len(engine.with_special_tokens([]))
        if inputs.texts is not None:
            # Past the limit, only how far past does not matter: refused or truncated.
            within = max(limit - overhead, 0)
            if sum(len(t) for t in inputs.texts) <= _INLINE_TOKENIZE_CHARS:
                bare = engine.tokenize(inputs.texts, within)
            else:
                bare = await asyncio.to_thread(engine.tokenize, inputs.texts, within)
        else:
            bare = inputs.token_arrays or []
            vocab = engine.vocab_size
            for i, tokens in enumerate(bare):
                bad = next((t for t in tokens if not 0 <= t < vocab), None)
                if bad is not None:
                    raise InvalidRequestError(
                        f"'input[{i}]' holds the token {bad}, which is not in the vocabulary "
                        f"of `{spec.id}` (token ids run from 0 to {vocab - 1}).",
                        param="input",
                        code="invalid_value",
                    )
        truncate = bool(_option(spec, "truncate", self.settings.truncate))
        result: list[list[int]] = []
        for i, tokens in enumerate(bare):
            if len(tokens) + overhead > limit:
                if not truncate:
                    raise InvalidRequestError(
                        f"'input[{i}]' is {len(tokens) + overhead} tokens long, but the model "
                        f"`{spec.id}` takes at most {limit} tokens per input. Shorten it, or "
                        "set `truncate = true` in the server's [embeddings] config to cut long "
                        "inputs.",
                        param="input",
                        code="context_length_exceeded",
                    )
                tokens = tokens[: limit - overhead]
            result.append(engine.with_special_tokens(tokens))
        total = sum(len(t) for t in result)
        if total > self.settings.max_total_tokens:
            raise InvalidRequestError(
                f"'input' holds {total} tokens in all; at most "
                f"{self.settings.max_total_tokens} tokens are allowed per request.",
                param="input",
                code="max_tokens_per_request",
            )
        return result

    # --- batching --------------------------------------------------------------------

    def _batcher(self, spec: ModelSpec, engine: EmbeddingEngine) -> MicroBatcher:
        batcher = self._batchers.get(spec.id)
        if batcher is None or batcher.engine is not engine:
            policy = BatchPolicy(
                batch_size=int(_option(spec, "batch_size", self.settings.batch_size)),
                max_wait_s=float(
                    _option(spec, "max_batch_wait_ms", self.settings.max_batch_wait_ms)
                )
                / 1000,
                max_pending=self.settings.max_pending_inputs,
            )
            batcher = MicroBatcher(engine, policy)
            self._batchers[spec.id] = batcher
        return batcher

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()


def shorten(vectors: NDArray[np.float32], dimensions: int) -> NDArray[np.float32]:
    """The first ``dimensions`` components of each vector, scaled back to unit length."""
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    result: NDArray[np.float32] = (cut / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


def build_response(
    vectors: NDArray[np.float32], model: str, tokens: int, encoding_format: str
) -> CreateEmbeddingResponse:
    """The response body; ``base64`` carries each vector as little-endian float32 bytes.

    Float vectors go through the SDK types' validation (pydantic-core, fast). A base64
    string does not fit their ``List[float]`` (the SDK decodes it after parsing), so those
    items are built with ``model_construct``; the router serializes without warnings.
    """
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
    if encoding_format == "base64":
        raw = vectors.astype("<f4", copy=False)
        data = [
            Embedding.model_construct(
                embedding=base64.b64encode(row.tobytes()).decode("ascii"),
                index=i,
                object="embedding",
            )
            for i, row in enumerate(raw)
        ]
        return CreateEmbeddingResponse.model_construct(
            data=data, model=model, object="list", usage=usage
        )
    data = [
        Embedding(embedding=row, index=i, object="embedding")
        for i, row in enumerate(vectors.tolist())
    ]
    return CreateEmbeddingResponse(data=data, model=model, object="list", usage=usage)
