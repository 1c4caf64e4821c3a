"""Which models exist and what names reach them.

Built-in models come from :mod:`oasis.models.catalog`; the config file adds local-path or
hub models and extra aliases. Lookups are by canonical id or alias, case-sensitive, as
OpenAI's are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from oasis.config import ModelConfig, ModelKind, Settings
from oasis.errors import ModelNotFoundError
from oasis.models.assets import is_installed
from oasis.models.catalog import BUILTIN_MODELS
from oasis.models.specs import HubSource, LocalSource, ModelSpec, Source

# The engine a config-file model gets when it names none.
DEFAULT_ENGINE_BY_KIND: dict[ModelKind, str] = {
    "chat": "llama.cpp",
    "embeddings": "sentence-transformers",
    "speech-to-text": "faster-whisper",
    "text-to-speech": "hibari",
    "images": "diffusers",
}


class RegistryError(Exception):
    """The configured models contradict each other (duplicate ids, dangling aliases)."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model found by name: ``name`` is what the client asked for."""

    name: str
    spec: ModelSpec


def spec_from_config(entry: ModelConfig) -> ModelSpec:
    """Turn one ``[[models]]`` table of the config file into a spec."""
    source: Source
    if entry.path is not None:
        source = LocalSource(entry.path)
    elif entry.hub is not None:
        source = HubSource(entry.hub, entry.hub_file)
    else:
        raise RegistryError(f"model `{entry.id}` needs either `path` or `hub`")
    return ModelSpec(
        id=entry.id,
        kind=entry.kind,
        engine=entry.engine or DEFAULT_ENGINE_BY_KIND[entry.kind],
        source=source,
        aliases=tuple(entry.aliases),
        owned_by="user",
        options=dict(entry.options),
    )


class ModelRegistry:
    """Specs by id, plus an alias table. Immutable once built."""

    def __init__(self, specs: list[ModelSpec], extra_aliases: dict[str, str] | None = None):
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            earlier = self._specs.get(spec.id)
            # A config entry may replace a built-in model, but no id may appear twice
            # among the built-ins or among the config entries.
            if earlier is not None and (spec.owned_by != "user" or earlier.owned_by == "user"):
                raise RegistryError(f"model id `{spec.id}` is defined twice")
            self._specs[spec.id] = spec
        self._aliases: dict[str, str] = {}
        for spec in self._specs.values():
            for alias in spec.aliases:
                self._aliases.setdefault(alias, spec.id)
        for alias, target in (extra_aliases or {}).items():
            if target not in self._specs:
                raise RegistryError(f"alias `{alias}` points to unknown model `{target}`")
            self._aliases[alias] = target  # config aliases win over built-in ones
        for alias in list(self._aliases):
            if alias in self._specs:
                del self._aliases[alias]  # a real id always means itself

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        specs = list(BUILTIN_MODELS) + [spec_from_config(m) for m in settings.models]
        return cls(specs, settings.aliases)

    def specs(self) -> list[ModelSpec]:
        return list(self._specs.values())

    def get_spec(self, model_id: str) -> ModelSpec | None:
        return self._specs.get(model_id)

    def aliases_of(self, model_id: str) -> list[str]:
        return [a for a, target in self._aliases.items() if target == model_id]

    def is_served(self, spec: ModelSpec) -> bool:
        """Optional packaged models are served only once their packages are installed."""
        return not spec.optional or is_installed(spec)

    def resolve(self, name: str, kind: ModelKind | None = None) -> ResolvedModel:
        """Find a served model by id or alias; 404 ``model_not_found`` otherwise."""
        model_id = name if name in self._specs else self._aliases.get(name)
        spec = self._specs.get(model_id) if model_id else None
        if spec is None or not self.is_served(spec):
            hint = None
            if spec is not None:
                hint = f"Install it with: oasis models install {spec.id}"
            raise ModelNotFoundError(name, hint)
        if kind is not None and spec.kind != kind:
            raise ModelNotFoundError(
                name, f"It is a {spec.kind} model and cannot serve this endpoint."
            )
        return ResolvedModel(name=name, spec=spec)

    def served_names(self) -> Iterator[ResolvedModel]:
        """Every id and alias a client may use, canonical ids first."""
        served = [s for s in self._specs.values() if self.is_served(s)]
        for spec in served:
            yield ResolvedModel(spec.id, spec)
        for alias, target in self._aliases.items():
            spec = self._specs[target]
            if self.is_served(spec):
                yield ResolvedModel(alias, spec)
