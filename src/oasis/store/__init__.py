"""Durable state: one repository per resource on a shared async engine, and blobs.

SQLAlchemy 2 async Core on SQLite (WAL, under the data dir) or PostgreSQL (asyncpg); one
code path for both. Every query is scoped by ``owner`` (an HMAC of the API key, see
:mod:`oasis.owners`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from oasis.store.batches import BatchRepository
from oasis.store.chat_completions import ChatCompletionRepository, StoredChatCompletion
from oasis.store.containers import ContainerRepository
from oasis.store.conversations import ConversationRepository, StoredConversation
from oasis.store.db import open_database
from oasis.store.events import EventLogRepository
from oasis.store.files import FileRepository, StoredFile
from oasis.store.items import ItemPage, ItemRepository
from oasis.store.keys import KeyRepository
from oasis.store.leases import LeaseRepository
from oasis.store.projects import ProjectRepository
from oasis.store.rate_windows import RateWindowRepository
from oasis.store.responses import ResponseRepository, StoredResponse
from oasis.store.storage import StorageRepository
from oasis.store.uploads import UploadRepository
from oasis.store.usage import UsageRepository
from oasis.store.vector_stores import VectorStoreRepository

if TYPE_CHECKING:
    from oasis.config import Settings
    from oasis.owners import OwnerIds

__all__ = [
    "open_store",
    "BatchRepository",
    "ChatCompletionRepository",
    "ConversationRepository",
    "EventLogRepository",
    "FileRepository",
    "ItemPage",
    "ItemRepository",
    "KeyRepository",
    "LeaseRepository",
    "ProjectRepository",
    "RateWindowRepository",
    "ResponseRepository",
    "StorageRepository",
    "Store",
    "StoredChatCompletion",
    "StoredConversation",
    "StoredFile",
    "StoredResponse",
    "UploadRepository",
    "UsageRepository",
]


class Store:
    """The repositories of every resource, on one engine (which it closes)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.responses = ResponseRepository(engine)
        self.conversations = ConversationRepository(engine)
        self.items = ItemRepository(engine)
        self.events = EventLogRepository(engine)
        self.projects = ProjectRepository(engine)
        self.keys = KeyRepository(engine)
        self.leases = LeaseRepository(engine)
        self.usage = UsageRepository(engine)
        self.rate_windows = RateWindowRepository(engine)
        self.files = FileRepository(engine)
        self.uploads = UploadRepository(engine)
        self.storage = StorageRepository(engine)
        self.batches = BatchRepository(engine)
        self.vector_stores = VectorStoreRepository(engine)
        self.containers = ContainerRepository(engine)
        self.chat_completions = ChatCompletionRepository(engine)

    async def close(self) -> None:
        await self.engine.dispose()


async def open_store(settings: Settings, owner_ids: OwnerIds) -> Store:
    """The store on the database ``settings`` name, migrated (the server and the admin
    commands open it alike)."""
    engine = await open_database(
        settings.database_url,
        settings.data_dir,
        owner_ids,
        idle_transaction_seconds=settings.idle_transaction_seconds,
    )
    return Store(engine)
