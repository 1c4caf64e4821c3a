"""Which models exist and what names reach them.

Built-in models come from :mod:`oasis.models.catalog`; the config file adds local-path or
hub models and extra aliases. Lookups are by canonical id or alias, case-sensitive, as
OpenAI's are.

An alias may be a glob pattern (``"gpt-*"``, matched with :func:`fnmatch.fnmatchcase`), so
the dated and future names clients send by default resolve without a list of every one.
A name is looked up in this order: a model id, an exact alias, the patterns of the config
file and of model specs, then the built-in defaults (:data:`DEFAULT_PATTERNS`), which lead
OpenAI's names to the first served model of their kind. Among patterns, one that reaches a
model of the kind the endpoint serves comes first, then the most specific (most literal
characters). Patterns are never listed: ``GET /v1/models`` shows concrete names only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

from oasis.config import ModelConfig, ModelKind, Settings
from oasis.errors import ModelNotFoundError
from oasis.models.assets import is_installed
from oasis.models.catalog import BUILTIN_MODELS, DEFAULT_PATTERNS
from oasis.models.specs import HubSource, LocalSource, ModelSpec, RemoteSource, Source

# The engine a config-file model gets when it names none.
DEFAULT_ENGINE_BY_KIND: dict[ModelKind, str] = {
    "chat": "llama.cpp",
    "embeddings": "sentence-transformers",
    "speech-to-text": "faster-whisper",
    "text-to-speech": "hibari",
    "images": "diffusers",
}

# The engine a config-file model with a `url` gets when it names none.
REMOTE_ENGINE = "openai"


class RegistryError(Exception):
    """The configured models contradict each other (duplicate ids, dangling aliases)."""


def is_pattern(name: str) -> bool:
    """True when an alias is a glob pattern rather than one name."""
    return any(c in name for c in "*?[")


def _specificity(pattern: str) -> int:
    return sum(c not in "*?[]" for c in pattern)


@dataclass(frozen=True)
class _Pattern:
    """A glob alias: to one model (``model_id``) or to the first served one of ``kind``."""

    glob: str
    model_id: str | None
    kind: ModelKind | None
    rank: int  # 0: config file and model specs, 1: built-in defaults


@dataclass(frozen=True)
class ResolvedModel:
    """A model found by name: ``name`` is what the client asked for."""

    name: str
    spec: ModelSpec


def spec_from_config(entry: ModelConfig) -> ModelSpec:
    """Turn one ``[[models]]`` table of the config file into a spec."""
    source: Source
    engine = entry.engine or DEFAULT_ENGINE_BY_KIND[entry.kind]
    if entry.remote_urls:
        key = entry.api_key.get_secret_value() if entry.api_key else None
        source = RemoteSource(
            tuple(u.rstrip("/") for u in entry.remote_urls), entry.upstream_model or entry.id, key
        )
        engine = entry.engine or REMOTE_ENGINE
    elif entry.path is not None:
        source = LocalSource(entry.path)
    elif entry.hub is not None:
        source = HubSource(entry.hub, entry.hub_file)
    else:
        raise RegistryError(f"model `{entry.id}` needs `path`, `hub` or `url`")
    return ModelSpec(
        id=entry.id,
        kind=entry.kind,
        engine=engine,
        source=source,
        aliases=tuple(entry.aliases),
        owned_by="user",
        options=dict(entry.options),
    )


class ModelRegistry:
    """Specs by id, plus an alias table. Immutable once built."""

    def __init__(
        self,
        specs: list[ModelSpec],
        extra_aliases: dict[str, str] | None = None,
        default_patterns: tuple[tuple[str, ModelKind], ...] = DEFAULT_PATTERNS,
    ):
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            earlier = self._specs.get(spec.id)
            # A config entry may replace a built-in model, but no id may appear twice
            # among the built-ins or among the config entries.
            if earlier is not None and (spec.owned_by != "user" or earlier.owned_by == "user"):
                raise RegistryError(f"model id `{spec.id}` is defined twice")
            self._specs[spec.id] = spec
        self._aliases: dict[str, str] = {}
        globs: dict[str, str] = {}
        for spec in self._specs.values():
            for alias in spec.aliases:
                (globs if is_pattern(alias) else self._aliases).setdefault(alias, spec.id)
        for alias, target in (extra_aliases or {}).items():
            if target not in self._specs:
                raise RegistryError(f"alias `{alias}` points to unknown model `{target}`")
            # Config aliases win over built-in ones.
            (globs if is_pattern(alias) else self._aliases)[alias] = target
        for alias in list(self._aliases):
            if alias in self._specs:
                del self._aliases[alias]  # a real id always means itself
        patterns = [_Pattern(g, target, None, 0) for g, target in globs.items()]
        patterns += [_Pattern(g, None, kind, 1) for g, kind in default_patterns]
        # Stable: among equally specific patterns the config file's order holds.
        self._patterns = sorted(patterns, key=lambda p: (p.rank, -_specificity(p.glob)))

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        specs = list(BUILTIN_MODELS) + [spec_from_config(m) for m in settings.models]
        return cls(specs, settings.aliases)

    def specs(self) -> list[ModelSpec]:
        return list(self._specs.values())

    def get_spec(self, model_id: str) -> ModelSpec | None:
        return self._specs.get(model_id)

    def aliases_of(self, model_id: str) -> list[str]:
        """Exact aliases, then the patterns that lead to ``model_id``."""
        exact = [a for a, target in self._aliases.items() if target == model_id]
        return exact + [p.glob for p in self._patterns if self._target(p) == model_id]

    def _first_of(self, kind: ModelKind) -> str | None:
        for spec in self._specs.values():
            if spec.kind == kind and self.is_served(spec):
                return spec.id
        return None

    def _target(self, pattern: _Pattern) -> str | None:
        if pattern.model_id is not None:
            return pattern.model_id
        return None if pattern.kind is None else self._first_of(pattern.kind)

    def _kind_of(self, pattern: _Pattern) -> ModelKind | None:
        if pattern.model_id is not None:
            return self._specs[pattern.model_id].kind
        return pattern.kind

    def _match(self, name: str, kind: ModelKind | None) -> _Pattern | None:
        matches = [p for p in self._patterns if fnmatchcase(name, p.glob)]
        fitting = [p for p in matches if kind is not None and self._kind_of(p) == kind]
        best = fitting or matches
        return best[0] if best else None

    def is_served(self, spec: ModelSpec) -> bool:
        """Optional packaged models are served only once their packages are installed."""
        return not spec.optional or is_installed(spec)

    def resolve(self, name: str, kind: ModelKind | None = None) -> ResolvedModel:
        """Find a served model by id or alias; 404 ``model_not_found`` otherwise."""
        model_id = name if name in self._specs else self._aliases.get(name)
        hint = None
        if model_id is None:
            pattern = self._match(name, kind)
            if pattern is not None:
                model_id = self._target(pattern)
                if model_id is None:
                    hint = f"This server has no {pattern.kind} model configured."
        spec = self._specs.get(model_id) if model_id else None
        if spec is None or not self.is_served(spec):
            if spec is not None:
                hint = f"Install it with: oasis models install {spec.id}"
            raise ModelNotFoundError(name, hint)
        if kind is not None and spec.kind != kind:
            raise ModelNotFoundError(
                name, f"It is a {spec.kind} model and cannot serve this endpoint."
            )
        return ResolvedModel(name=name, spec=spec)

    def served_names(self) -> Iterator[ResolvedModel]:
        """Every id and exact alias a client may use, canonical ids first (patterns
        match names without naming any, so they are not listed)."""
        served = [s for s in self._specs.values() if self.is_served(s)]
        for spec in served:
            yield ResolvedModel(spec.id, spec)
        for alias, target in self._aliases.items():
            spec = self._specs[target]
            if self.is_served(spec):
                yield ResolvedModel(alias, spec)
