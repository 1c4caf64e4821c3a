"""``Annotated`` dependencies: routers receive services through these, never globals.

Every service lives on ``app.state`` (built in the lifespan of ``create_app``); tests or
embedders may override any of these with ``app.dependency_overrides``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar, cast

from fastapi import Depends, Request

from oasis.config import Settings
from oasis.metrics import Metrics
from oasis.owners import ANONYMOUS
from oasis.responses.conversations import ConversationService
from oasis.responses.service import ResponsesService
from oasis.services.audio import SpeechService, TranscriptionService
from oasis.services.batches import BatchesService
from oasis.services.chat import ChatService
from oasis.services.chat_store import StoredChatCompletions
from oasis.services.completions import CompletionService
from oasis.services.containers import ContainerService
from oasis.services.embeddings import EmbeddingService
from oasis.services.files import FilesService
from oasis.services.generation import GenerationCore
from oasis.services.images import ImagesService
from oasis.services.models import ModelManager
from oasis.services.uploads import UploadsService
from oasis.services.usage_report import UsageReport
from oasis.services.vector_stores import VectorStoreService

T = TypeVar("T")


def _app_state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency returning ``request.app.state.<name>`` typed as ``kind``.

    ``async`` although it never awaits: FastAPI runs a plain ``def`` dependency in its
    thread pool, a thread hop per request for an attribute lookup.
    """

    async def dependency(request: Request) -> T:
        return cast(T, getattr(request.app.state, name))

    dependency.__name__ = f"get_{name}"
    return dependency


async def get_include(request: Request) -> frozenset[str]:
    """The ``include`` query values, as the SDK sends them (``include[]=…``) or plainly."""
    params = request.query_params
    return frozenset(params.getlist("include") + params.getlist("include[]"))


IncludeDep = Annotated[frozenset[str], Depends(get_include)]


async def get_owner(request: Request) -> str:
    """The owner of whatever this request stores: its key's project, or an HMAC of the key."""
    return str(getattr(request.state, "owner", ANONYMOUS))


SettingsDep = Annotated[Settings, Depends(_app_state("settings", Settings))]
ModelsDep = Annotated[ModelManager, Depends(_app_state("models", ModelManager))]
CoreDep = Annotated[GenerationCore, Depends(_app_state("core", GenerationCore))]
ChatDep = Annotated[ChatService, Depends(_app_state("chat", ChatService))]
StoredChatDep = Annotated[
    StoredChatCompletions, Depends(_app_state("stored_chat", StoredChatCompletions))
]
CompletionsDep = Annotated[CompletionService, Depends(_app_state("completions", CompletionService))]
ResponsesDep = Annotated[ResponsesService, Depends(_app_state("responses", ResponsesService))]
ConversationsDep = Annotated[
    ConversationService, Depends(_app_state("conversations", ConversationService))
]
SpeechDep = Annotated[SpeechService, Depends(_app_state("speech", SpeechService))]
TranscriptionDep = Annotated[
    TranscriptionService, Depends(_app_state("transcription", TranscriptionService))
]
EmbeddingsDep = Annotated[EmbeddingService, Depends(_app_state("embeddings", EmbeddingService))]
FilesDep = Annotated[FilesService, Depends(_app_state("files", FilesService))]
BatchesDep = Annotated[BatchesService, Depends(_app_state("batches", BatchesService))]
UploadsDep = Annotated[UploadsService, Depends(_app_state("uploads", UploadsService))]
ImagesDep = Annotated[ImagesService, Depends(_app_state("images", ImagesService))]
UsageReportDep = Annotated[UsageReport, Depends(_app_state("usage_report", UsageReport))]
MetricsDep = Annotated[Metrics, Depends(_app_state("metrics", Metrics))]
VectorStoresDep = Annotated[
    VectorStoreService, Depends(_app_state("vector_stores", VectorStoreService))
]
ContainersDep = Annotated[ContainerService, Depends(_app_state("containers", ContainerService))]
OwnerDep = Annotated[str, Depends(get_owner)]
