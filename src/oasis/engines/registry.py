"""Engine factories by name. Built-in engines register here exactly as a plugin would.

A third-party package adds an engine through the ``oasis.engines`` entry-point group; the
entry point names a callable ``(spec, settings) -> Engine``. The factory finds its own
weights: a local engine resolves the spec's packaged, local or hub files with
:func:`oasis.models.assets.resolve_source`; a remote one reads its URL from
``spec.options``. A chat model's engine is a :class:`~oasis.core.backend.ChatBackend`.
"""

from __future__ import annotations

from collections.abc import Callable

from oasis.config import Settings
from oasis.engines.base import Engine
from oasis.errors import ModelUnavailableError
from oasis.models.specs import ModelSpec
from oasis.plugins import load_target, plugin_target

EngineFactory = Callable[[ModelSpec, Settings], Engine]

# name -> "module:function"; imported only when a model of that engine loads, so that
# starting the server never imports torch or CTranslate2 needlessly.
_BUILTIN: dict[str, str] = {
    "llama.cpp": "oasis.engines.llamacpp:create_engine",
    "faster-whisper": "oasis.engines.whisper:create_engine",
    "hibari": "oasis.engines.tts:create_engine",
    "sentence-transformers": "oasis.engines.embeddings:create_engine",
    "diffusers": "oasis.engines.diffusion:create_engine",
    "openai": "oasis.engines.remote:create_engine",
}
_factories: dict[str, EngineFactory] = {}


def register_engine(name: str, factory: EngineFactory | str) -> None:
    """Make ``name`` available to model specs; ``factory`` may be a ``module:attr`` path."""
    if isinstance(factory, str):
        _BUILTIN[name] = factory
    else:
        _factories[name] = factory


def get_engine_factory(name: str) -> EngineFactory:
    """The factory registered for ``name`` (built-in, registered, or an entry point)."""
    if name in _factories:
        return _factories[name]
    target = plugin_target("oasis.engines", name, _BUILTIN)
    if target is None:
        raise ModelUnavailableError(f"No engine named `{name}` is installed.")
    try:
        factory: EngineFactory = load_target(target)
    except ImportError as exc:
        raise ModelUnavailableError(
            f"The `{name}` engine cannot be imported ({exc}). Run `make install` to "
            "install its packages."
        ) from exc
    _factories[name] = factory
    return factory
