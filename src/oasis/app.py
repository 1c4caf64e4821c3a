"""``create_app(settings)``: wires services into the routers. Nothing heavy at import time."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from oasis import __version__
from oasis.access import Access
from oasis.api import (
    audio,
    batches,
    chat,
    chat_completions_store,
    completions,
    containers,
    conversations,
    embeddings,
    files,
    health,
    images,
    metrics,
    models,
    playground,
    responses,
    uploads,
    usage,
    vector_stores,
)
from oasis.api.batch_lines import BatchDispatch
from oasis.api.cors import SdkCorsMiddleware
from oasis.api.deadlines import BodyDeadlineMiddleware
from oasis.api.errors import install_error_handlers
from oasis.api.middleware import (
    MULTIPART_ALLOWANCE,
    AuthMiddleware,
    BodyLimitMiddleware,
    CancelOnDisconnectMiddleware,
    RequestIdMiddleware,
    RouteLimit,
)
from oasis.api.observe import ObserveMiddleware
from oasis.config import Settings
from oasis.limits import Limiter
from oasis.metrics import Metrics
from oasis.models.registry import ModelRegistry
from oasis.owners import OwnerIds
from oasis.responses.conversations import ConversationService
from oasis.responses.service import ResponsesService
from oasis.sandbox import Limits, Sandboxes
from oasis.search import create_engine
from oasis.services.audio import SpeechService, TranscriptionService
from oasis.services.batch_runner import BatchRunner
from oasis.services.batches import BatchesService
from oasis.services.chat import ChatService
from oasis.services.chat_search import ChatSearch
from oasis.services.chat_store import StoredChatCompletions
from oasis.services.completions import CompletionService
from oasis.services.containers import ContainerService
from oasis.services.embeddings import EmbeddingService
from oasis.services.files import FilesService
from oasis.services.generation import GenerationCore
from oasis.services.housekeeping import Housekeeping
from oasis.services.image_files import ImageFileStore, adopt_legacy_directory
from oasis.services.image_input import ImageInputs
from oasis.services.images import ImagesService
from oasis.services.leases import Leases
from oasis.services.models import ModelManager
from oasis.services.storage_cap import StorageQuota
from oasis.services.uploads import UploadsService
from oasis.services.usage_report import UsageReport
from oasis.services.vector_stores import VectorStoreService
from oasis.store import open_store
from oasis.store.blobs import BlobStore
from oasis.tools import code_interpreter, image_generation, web_search
from oasis.tools.mcp_sessions import SessionPool
from oasis.tools.outbound import UrlPolicy, create_http_client
from oasis.tools.registry import load_plugins
from oasis.usage import UsageRecorder

log = logging.getLogger(__name__)


def upload_routes(settings: Settings) -> list[RouteLimit]:
    """The routes that take file bytes, with body limits from the file settings."""
    return [
        RouteLimit("POST", re.compile("/v1/files"), settings.max_file_bytes + MULTIPART_ALLOWANCE),
        RouteLimit(
            "POST",
            re.compile("/v1/containers/[^/]+/files"),
            settings.max_file_bytes + MULTIPART_ALLOWANCE,
        ),
        RouteLimit(
            "POST",
            re.compile("/v1/uploads/[^/]+/parts"),
            settings.max_upload_part_bytes + MULTIPART_ALLOWANCE,
        ),
    ]


def _sandboxes(settings: Settings) -> Sandboxes:
    """The code_interpreter sandboxes, with the limits of ``[code_interpreter]``."""
    config = settings.code_interpreter
    limits = Limits(
        cpu_seconds=config.cpu_seconds,
        wall_seconds=config.timeout,
        processes=config.max_processes,
        file_bytes=config.max_file_bytes,
        disk_bytes=config.max_disk_bytes,
        output_chars=config.max_output_chars,
    )
    return Sandboxes(
        limits,
        max_kernels=config.max_kernels,
        idle_seconds=config.idle_seconds,
        bwrap=config.bwrap,
        require_seccomp=config.require_seccomp,
    )


def create_app(
    settings: Settings, *, http_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The ASGI app for ``settings``; services start in the lifespan.

    ``http_transport`` carries the outbound requests of tools (tests pass a
    ``httpx.MockTransport`` to stand in for the outside world).
    """
    search_engine = create_engine(settings.web_search, http_transport)
    web_search.install(search_engine, settings.web_search)
    sandboxes = _sandboxes(settings)
    code_interpreter.install(sandboxes, enabled=settings.code_interpreter.enabled)
    load_plugins(settings.tool_plugins)
    registry = ModelRegistry.from_settings(settings)
    secret = settings.owner_secret
    owner_ids = OwnerIds(settings.data_dir, secret.get_secret_value() if secret else None)
    access = Access(
        settings.api_keys,
        owner_ids,
        default_rpm=settings.rate_limit_rpm,
        default_tpm=settings.rate_limit_tpm,
        cache_seconds=settings.key_cache_seconds,
    )
    meters = Metrics()
    limiter = Limiter()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        owner_ids.open()
        manager = ModelManager(registry, settings)
        core = GenerationCore(manager)
        app.state.settings = settings
        app.state.models = manager
        app.state.core = core
        app.state.completions = CompletionService(core)
        app.state.speech = SpeechService(manager)
        app.state.transcription = TranscriptionService(manager)
        store = await open_store(settings, owner_ids)
        app.state.store = store
        # Replicas may share a PostgreSQL database: background work is leased there.
        shared = store.engine.dialect.name == "postgresql"
        leases = Leases(store.leases if shared else None, ttl=settings.lease_seconds)
        limiter.open(store.rate_windows)
        recorder = UsageRecorder(store.usage, limiter, meters)
        access.open(store.keys, recorder)
        app.state.metrics = meters
        app.state.usage_report = UsageReport(store.usage)
        meters.watch(
            "oasis_queue_depth",
            "Requests waiting for each loaded model.",
            "model",
            lambda: {model: waiting for model, (waiting, _) in manager.loads().items()},
        )
        meters.watch(
            "oasis_active_sequences",
            "Sequences each loaded model is running now.",
            "model",
            lambda: {model: running for model, (_, running) in manager.loads().items()},
        )
        urls = UrlPolicy(allow_private=settings.allow_private_urls)
        http = create_http_client(http_transport, urls)
        mcp_sessions = SessionPool(http, urls)
        app.state.stored_chat = StoredChatCompletions(store.chat_completions)
        app.state.chat = ChatService(core, ChatSearch(http, urls), app.state.stored_chat)
        app.state.conversations = ConversationService(store)
        app.state.embeddings = EmbeddingService(manager, settings.embeddings)
        blobs = BlobStore(settings.data_dir / "blobs")
        file_service = FilesService(
            store.files,
            blobs.section("files"),
            max_file_bytes=settings.max_file_bytes,
            quota=StorageQuota(store.storage, settings.files.max_total_bytes),
        )
        upload_service = UploadsService(
            store.uploads,
            blobs.section("upload_parts"),
            file_service,
            max_upload_bytes=settings.max_upload_bytes,
            max_part_bytes=settings.max_upload_part_bytes,
        )
        app.state.files = file_service
        # Images of chat and response inputs: the caller's files, data URLs, or URLs the
        # outbound policy allows, fetched through the tools' one client.
        core.images = ImageInputs(file_service, http, urls)
        app.state.vector_stores = VectorStoreService.build(
            store.vector_stores,
            file_service,
            app.state.embeddings,
            settings.vector_stores.embedding_model,
            leases,
            search_wait=settings.vector_stores.search_wait_seconds,
        )
        file_service.on_delete.append(app.state.vector_stores.detach_everywhere)
        app.state.containers = ContainerService(
            store.containers,
            file_service,
            sandboxes,
            settings.data_dir / "containers",
            max_file_bytes=settings.max_file_bytes,
        )
        app.state.responses = ResponsesService(
            core,
            store,
            http,
            urls,
            tool_services={
                "vector_stores": app.state.vector_stores,
                "containers": app.state.containers,
                "mcp_sessions": mcp_sessions,
            },
            leases=leases,
        )
        app.state.uploads = upload_service
        housekeeping = Housekeeping(
            [file_service.sweep, upload_service.sweep, app.state.containers.sweep],
            once=[
                file_service.discard_orphans,
                upload_service.discard_orphans,
                app.state.containers.discard_orphans,
            ],
        )
        pictures = blobs.section("images")
        adopt_legacy_directory(settings.data_dir / "images", pictures)
        app.state.images = ImagesService(manager, ImageFileStore(pictures), meters)
        image_generation.install(app.state.images)
        dispatch = BatchDispatch(
            app.state.chat,
            app.state.completions,
            app.state.embeddings,
            app.state.responses,
            app.state.images,
        )
        runner = BatchRunner(
            store.batches,
            file_service,
            dispatch,
            concurrency=settings.batch_concurrency,
            leases=leases,
            usage=store.usage,
            count_usage=recorder.count,
        )
        # With replicas, each adopts the background work of one that died (its leases
        # expired) every half lease.
        adoption = Housekeeping(
            [
                app.state.responses.jobs.adopt_orphans,
                app.state.vector_stores.ingestion.recover,
                runner.recover,
            ],
            interval=settings.lease_seconds / 2,
        )
        app.state.batches = BatchesService(store.batches, file_service, runner)
        meters.watch(
            "oasis_background_jobs",
            "Background responses and batches this process is running.",
            "kind",
            lambda: {
                "responses": app.state.responses.jobs.running,
                "batches": runner.running,
            },
        )
        meters.watch(
            "oasis_batch_lines_done",
            "Batch lines this process finished since it started, by outcome.",
            "outcome",
            lambda: dict(runner.lines_done),
        )
        meters.watch(
            "oasis_batch_lines_rerun",
            "Batch lines this process stopped part-way to give a model thread to a live "
            "request, and ran again.",
            "reason",
            lambda: {"preempted": runner.lines_rerun},
        )
        try:
            leases.start()  # renews from the first claim on (only when shared)
            if settings.code_interpreter.enabled:
                await sandboxes.probe()
            await app.state.responses.jobs.recover()
            await app.state.vector_stores.ingestion.recover()
            housekeeping.start()
            await manager.preload()
            await runner.recover()
            if shared:
                adoption.start()
            log.info("oasis %s ready", __version__)
            yield
        finally:
            await adoption.close()
            await runner.close()
            await housekeeping.close()
            await app.state.vector_stores.ingestion.close()
            await app.state.responses.close()
            await leases.close()
            await sandboxes.close()
            await store.close()
            await app.state.embeddings.close()
            await manager.close()
            await mcp_sessions.close()
            await http.aclose()
            if search_engine is not None:
                await search_engine.close()

    app = FastAPI(
        title="oasis",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    routers = (
        health,
        models,
        chat,
        chat_completions_store,
        completions,
        responses,
        conversations,
        embeddings,
        audio,
        images,
        files,
        uploads,
        batches,
        usage,
        metrics,
        vector_stores,
        containers,
    )
    for module in routers:
        app.include_router(module.router)
    if settings.playground:
        playground.install(app)
    # Added last = outermost: metrics and access logs, then request ids, then the body
    # deadline (so every read of the body is timed), then auth (so no body is read for an
    # unauthenticated client), then the body limit, then the disconnect watch.
    app.add_middleware(CancelOnDisconnectMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        routes=upload_routes(settings),
    )
    app.add_middleware(AuthMiddleware, access=access, limiter=limiter)
    app.add_middleware(BodyDeadlineMiddleware, timeout=settings.body_timeout)
    app.add_middleware(RequestIdMiddleware)
    # Outside the request ids, so a 500 that middleware makes is counted and logged too.
    app.add_middleware(ObserveMiddleware, metrics=meters, json_log=settings.log_format == "json")
    if settings.cors_origins:
        # Outermost: a preflight carries no credentials, so it is answered before auth, and
        # every answer (a 401 too) carries the headers that let the page read it.
        app.add_middleware(SdkCorsMiddleware, origins=settings.cors_origins)
    return app
