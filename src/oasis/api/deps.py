"""``Annotated`` dependencies: routers receive services through these, never globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from oasis.config import Settings
from oasis.services.audio import SpeechService, TranscriptionService
from oasis.services.chat import ChatService
from oasis.services.embeddings import EmbeddingService
from oasis.services.generation import GenerationCore
from oasis.services.images import ImagesService
from oasis.services.models import ModelManager


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_models(request: Request) -> ModelManager:
    models: ModelManager = request.app.state.models
    return models


def get_core(request: Request) -> GenerationCore:
    core: GenerationCore = request.app.state.core
    return core


def get_chat(request: Request) -> ChatService:
    chat: ChatService = request.app.state.chat
    return chat


def get_images(request: Request) -> ImagesService:
    images: ImagesService = request.app.state.images
    return images


def get_embeddings(request: Request) -> EmbeddingService:
    embeddings: EmbeddingService = request.app.state.embeddings
    return embeddings


def get_speech(request: Request) -> SpeechService:
    speech: SpeechService = request.app.state.speech
    return speech


def get_transcription(request: Request) -> TranscriptionService:
    transcription: TranscriptionService = request.app.state.transcription
    return transcription


def get_owner(request: Request) -> str:
    """The owner of whatever this request stores: a hash of its API key."""
    return str(getattr(request.state, "owner", "anonymous"))


SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelsDep = Annotated[ModelManager, Depends(get_models)]
CoreDep = Annotated[GenerationCore, Depends(get_core)]
ChatDep = Annotated[ChatService, Depends(get_chat)]
OwnerDep = Annotated[str, Depends(get_owner)]
SpeechDep = Annotated[SpeechService, Depends(get_speech)]
TranscriptionDep = Annotated[TranscriptionService, Depends(get_transcription)]
EmbeddingsDep = Annotated[EmbeddingService, Depends(get_embeddings)]
ImagesDep = Annotated[ImagesService, Depends(get_images)]
