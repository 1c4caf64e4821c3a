"""Embeddings, speech-to-text and text-to-speech on an OpenAI-compatible server.

These engines answer whole requests: the service validates a request, and the relay sends
its fields to the server under the model's ``upstream_model`` name through the model's
:class:`~oasis.engines.remote.upstream.UpstreamPool` (pooled connections, balancing,
health checks, errors translated at the boundary). Speech and streamed transcripts come
back as they arrive; closing the answer hangs up on the server.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from typing import Any

import numpy as np

from oasis.engines.base import AudioFile, EmbeddedInputs, RelayedAnswer, TextTokens
from oasis.engines.remote.tokens import text_tokens
from oasis.engines.remote.upstream import UpstreamPool
from oasis.errors import EngineUnreachableError, ModelUnavailableError
from oasis.models.specs import ModelSpec

log = logging.getLogger(__name__)


class _Relay:
    """What every relay has: the model, its servers and the name they know it by."""

    def __init__(self, spec: ModelSpec, pool: UpstreamPool, upstream_model: str) -> None:
        self.spec = spec
        self.pool = pool
        self.upstream_model = upstream_model

    async def reachable(self) -> bool:
        """For ``/health/ready``: whether an upstream server answers."""
        return await self.pool.reachable()

    async def close(self) -> None:
        await self.pool.close()

    def _malformed(self, what: str) -> EngineUnreachableError:
        return EngineUnreachableError(f"The engine of `{self.spec.id}` sent {what}.")


class RemoteEmbeddings(_Relay):
    """An :class:`~oasis.engines.base.EmbeddingRelay`.

    Vectors are asked for as base64 (a quarter of the bytes of JSON floats, and exact); a
    server that ignores ``encoding_format`` and sends floats is read as well. Tokens are
    counted here, for vector stores, as :mod:`oasis.engines.remote.tokens` describes
    (the ``tokenizer`` option); ``max_input_tokens``, when set, cuts server-side texts
    (chunks, queries) to that many before they are sent.
    """

    def __init__(self, spec: ModelSpec, pool: UpstreamPool, upstream_model: str) -> None:
        super().__init__(spec, pool, upstream_model)
        limit = spec.options.get("max_input_tokens")
        try:
            self.max_input_tokens: int | None = int(limit) if limit else None
        except (TypeError, ValueError) as exc:
            raise ModelUnavailableError(
                f"The option `max_input_tokens` of `{spec.id}` must be a number of tokens."
            ) from exc
        named = spec.options.get("tokenizer")
        self._named = str(named) if named else None
        # A named tokenizer loads now, so a wrong one fails the model's load; the
        # fallback only when first needed (most remote models never index a file).
        self._tokens: TextTokens | None = text_tokens(spec.id, self._named) if named else None
        self._lock = threading.Lock()

    @property
    def tokens(self) -> TextTokens:
        """What counts this model's tokens here. Blocking on its first use (a load)."""
        with self._lock:
            if self._tokens is None:
                self._tokens = text_tokens(self.spec.id, self._named)
                log.info("`%s` counts tokens for chunking with %s", self.spec.id, self._tokens.name)
            return self._tokens

    async def embed_inputs(
        self, inputs: list[str] | list[list[int]], dimensions: int | None
    ) -> EmbeddedInputs:
        body: dict[str, Any] = {
            "model": self.upstream_model,
            "input": inputs,
            "encoding_format": "base64",
        }
        if dimensions is not None:
            body["dimensions"] = dimensions
        answer = await self.pool.stream("/embeddings", body)
        try:
            raw = await answer.read()
        finally:
            await answer.aclose()
        try:
            parsed = json.loads(raw)
            items = sorted(parsed["data"], key=lambda item: int(item["index"]))
            rows = [_vector(item["embedding"]) for item in items]
            usage = parsed.get("usage") or {}
            tokens = int(usage.get("prompt_tokens") or 0)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise self._malformed(f"an embeddings answer it cannot read ({exc})") from exc
        if len(rows) != len(inputs) or len({len(row) for row in rows}) > 1:
            raise self._malformed(f"{len(rows)} vectors of unequal or wrong count")
        vectors = np.stack(rows) if rows else np.empty((0, 0), dtype=np.float32)
        return EmbeddedInputs(vectors, tokens)


def _vector(value: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value, validate=True), dtype="<f4").astype(np.float32)
    if not isinstance(value, list):
        raise TypeError("an embedding is neither base64 nor a list")
    return np.asarray(value, dtype=np.float32)


class RemoteSpeechToText(_Relay):
    """A :class:`~oasis.engines.base.SpeechToTextRelay`: the file goes on as it came."""

    async def transcribe_file(
        self, task: str, fields: dict[str, Any], audio: AudioFile
    ) -> RelayedAnswer:
        path = "/audio/translations" if task == "translate" else "/audio/transcriptions"
        return await self.pool.stream(
            path,
            {**fields, "model": self.upstream_model},
            files={"file": (audio.filename, audio.data, audio.content_type)},
        )


class RemoteTextToSpeech(_Relay):
    """A :class:`~oasis.engines.base.TextToSpeechRelay`: audio relayed as it arrives."""

    async def speak(self, fields: dict[str, Any]) -> RelayedAnswer:
        return await self.pool.stream("/audio/speech", {**fields, "model": self.upstream_model})
