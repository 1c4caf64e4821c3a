"""Loads engines on demand, one per model, and hands them to the services that need them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TypeVar

from oasis.config import ModelKind, Settings
from oasis.engines.base import Engine, Queued
from oasis.engines.registry import get_engine_factory
from oasis.errors import InvalidRequestError, ModelUnavailableError, OasisError
from oasis.models.registry import ModelRegistry, ResolvedModel
from oasis.models.specs import ModelSpec

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Engine)
R = TypeVar("R", bound=Engine)


class ModelManager:
    """Owns every loaded engine. Loading happens off the event loop, once per model."""

    def __init__(self, registry: ModelRegistry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self._engines: dict[str, Engine] = {}
        self._loading: dict[str, asyncio.Task[Engine]] = {}

    def resolve(self, name: str, kind: ModelKind | None = None) -> ResolvedModel:
        return self.registry.resolve(name, kind)

    def default_model(self, kind: ModelKind, param: str = "model") -> str:
        """The model of ``kind`` for a request that may name none (as the spec allows).

        The first preloaded one (the operator's choice, and already loaded), else the
        first one served.
        """
        for name in self.settings.preload:
            try:
                return self.registry.resolve(name, kind).spec.id
            except OasisError:
                continue
        for spec in self.registry.specs():
            if spec.kind == kind and self.registry.is_served(spec):
                return spec.id
        raise InvalidRequestError(
            f"Missing required parameter: '{param}' (this server has no {kind} model to "
            "default to).",
            param=param,
            code="missing_required_parameter",
        )

    async def engine_for(self, spec: ModelSpec) -> Engine:
        """The loaded engine for ``spec``, loading it first if needed.

        A load is one task per model that every caller awaits through ``shield``: a caller
        that is cancelled (its client hung up) stops waiting, but the load goes on and
        its engine is kept, so the next request neither loads the model twice nor leaks it.
        A failed load is forgotten, so a later request tries again.
        """
        engine = self._engines.get(spec.id)
        if engine is not None:
            return engine
        task = self._loading.get(spec.id)
        if task is None:
            task = asyncio.create_task(self._load_and_keep(spec), name=f"load {spec.id}")
            # Retrieved here so a failure that no caller waited for is not reported as
            # "never retrieved"; callers still get it through their await.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._loading[spec.id] = task
        return await asyncio.shield(task)

    async def _load_and_keep(self, spec: ModelSpec) -> Engine:
        try:
            engine = await asyncio.to_thread(self._load, spec)
            self._engines[spec.id] = engine
            return engine
        finally:
            self._loading.pop(spec.id, None)

    async def get(
        self, name: str, kind: ModelKind, engine_type: type[E]
    ) -> tuple[ResolvedModel, E]:
        """Resolve ``name`` for an endpoint of ``kind`` and return its loaded engine."""
        resolved = self.resolve(name, kind)
        engine = await self.engine_for(resolved.spec)
        if not isinstance(engine, engine_type):
            raise ModelUnavailableError(
                f"The engine of `{resolved.spec.id}` does not provide {engine_type.__name__}."
            )
        return resolved, engine

    async def get_either(
        self, name: str, kind: ModelKind, local: type[E], relay: type[R]
    ) -> tuple[ResolvedModel, E | R]:
        """:meth:`get` for an endpoint whose models run here (``local``, the engine
        protocol) or answer whole requests elsewhere (``relay``, a remote server)."""
        resolved = self.resolve(name, kind)
        engine = await self.engine_for(resolved.spec)
        if not isinstance(engine, (local, relay)):
            raise ModelUnavailableError(
                f"The engine of `{resolved.spec.id}` provides neither {local.__name__} nor "
                f"{relay.__name__}."
            )
        return resolved, engine

    def _load(self, spec: ModelSpec) -> Engine:
        log.info("loading model %s (%s)", spec.id, spec.engine)
        try:
            factory = get_engine_factory(spec.engine)
            return factory(spec, self.settings)
        except OasisError:
            raise
        except Exception as exc:  # engines should translate, but a load must never 500 blindly
            log.exception("loading %s failed", spec.id)
            raise ModelUnavailableError(
                f"The model `{spec.id}` could not be loaded: {type(exc).__name__}: {exc}"
            ) from exc

    def loads(self) -> dict[str, tuple[int, int]]:
        """Per loaded model: (requests waiting, sequences running) on its worker."""
        found: dict[str, tuple[int, int]] = {}
        for model_id, engine in self._engines.items():
            if isinstance(engine, Queued):  # a remote engine has no queue here to report
                found[model_id] = engine.load
        return found

    async def unready(self) -> list[str]:
        """Why this server cannot serve yet (empty when it can): preloaded models that are
        not loaded, and loaded engines that say they cannot reach their runtime.

        An engine declares that it can tell by having ``async reachable() -> bool`` (a
        remote engine asks its upstream servers); others are ready once loaded.
        """
        problems: list[str] = []
        for name in self.settings.preload:
            try:
                spec = self.registry.resolve(name).spec
            except OasisError:
                continue  # preload logged it; nothing to wait for
            if spec.id not in self._engines:
                problems.append(f"model {spec.id} is not loaded")
        for model_id, engine in list(self._engines.items()):
            reachable = getattr(engine, "reachable", None)
            if reachable is None:
                continue
            try:
                ok = bool(await reachable())
            except Exception:
                ok = False
            if not ok:
                problems.append(f"model {model_id} cannot reach its engine")
        return problems

    async def preload(self) -> None:
        """Load the models named in ``settings.preload``; failures are logged, not fatal."""
        for name in self.settings.preload:
            try:
                await self.engine_for(self.registry.resolve(name).spec)
            except Exception as exc:  # a broken optional model must not stop the server
                log.warning("could not preload %s: %s", name, exc)

    async def close(self) -> None:
        for loading in list(self._loading.values()):
            # A load still running finishes first, so its engine is closed with the rest.
            with contextlib.suppress(Exception):
                await loading
        for engine in self._engines.values():
            await engine.close()
        self._engines.clear()
