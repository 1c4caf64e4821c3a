"""Remote engines: models served by an OpenAI-compatible server (engine ``openai``).

A ``[[models]]`` entry with ``url`` (or several ``urls``) names the server; ``api_key``
and ``upstream_model`` say how to ask it. ``options`` tune the connection
(``connect_timeout``, ``read_timeout``, ``health_interval``, ``max_connections``), the
dialect (``structured_output``, ``stream_usage``, ``context_length``) and, for an
embeddings model that indexes vector stores, how its tokens are counted here
(``tokenizer``, ``max_input_tokens``: :mod:`oasis.engines.remote.tokens`); see
``docs/models.md``.
"""

from __future__ import annotations

from oasis.config import Settings
from oasis.engines.base import Engine
from oasis.engines.remote.chat import RemoteChatBackend
from oasis.engines.remote.relays import RemoteEmbeddings, RemoteSpeechToText, RemoteTextToSpeech
from oasis.engines.remote.upstream import UpstreamConfig, UpstreamPool
from oasis.errors import ModelUnavailableError
from oasis.models.specs import ModelSpec, RemoteSource

__all__ = [
    "RemoteChatBackend",
    "RemoteEmbeddings",
    "RemoteSpeechToText",
    "RemoteTextToSpeech",
    "UpstreamPool",
    "create_engine",
]

_RELAYS = {
    "embeddings": RemoteEmbeddings,
    "speech-to-text": RemoteSpeechToText,
    "text-to-speech": RemoteTextToSpeech,
}


def upstream_config(spec: ModelSpec) -> UpstreamConfig:
    """How to reach ``spec``'s servers, from its source and options."""
    source = spec.source
    if not isinstance(source, RemoteSource):
        raise ModelUnavailableError(f"The model `{spec.id}` needs a `url` for engine `openai`.")
    options = spec.options
    try:
        return UpstreamConfig(
            model_id=spec.id,
            urls=source.urls,
            api_key=source.api_key,
            connect_timeout=float(options.get("connect_timeout", 5.0)),
            read_timeout=float(options.get("read_timeout", 600.0)),
            health_interval=float(options.get("health_interval", 5.0)),
            max_connections=int(options.get("max_connections", 256)),
        )
    except (TypeError, ValueError) as exc:
        raise ModelUnavailableError(f"The options of model `{spec.id}` are invalid: {exc}") from exc


def create_engine(spec: ModelSpec, settings: Settings) -> Engine:
    """A remote model of ``spec.kind``: a chat backend, or a relay of whole requests."""
    del settings  # the server's own settings (threads, context) do not apply remotely
    relay = _RELAYS.get(spec.kind)
    if spec.kind != "chat" and relay is None:
        raise ModelUnavailableError(
            f"The model `{spec.id}` is a {spec.kind} model; engine `openai` serves chat, "
            "embeddings, speech-to-text and text-to-speech models."
        )
    config = upstream_config(spec)
    assert isinstance(spec.source, RemoteSource)
    pool = UpstreamPool(config)
    if relay is None:
        return RemoteChatBackend(spec, pool, spec.source.upstream_model)
    return relay(spec, pool, spec.source.upstream_model)
