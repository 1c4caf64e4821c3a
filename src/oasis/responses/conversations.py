"""The Conversations API: durable item lists that responses read from and append to."""

from __future__ import annotations

from collections.abc import Collection

from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
)

from oasis.errors import NotFoundError
from oasis.ids import new_id
from oasis.responses.include import shown
from oasis.responses.items import CONVERSATION_ITEM, normalize_input
from oasis.store import Store, StoredConversation
from oasis.store.pagination import FIRST_PAGE, PageQuery
from oasis.types import Item


def _missing(conversation_id: str) -> NotFoundError:
    return NotFoundError(
        f"Conversation with id '{conversation_id}' not found.", param="conversation_id"
    )


def _conversation(stored: StoredConversation) -> Conversation:
    return Conversation(
        id=stored.id, object="conversation", created_at=stored.created_at, metadata=stored.metadata
    )


def item_list(
    data: list[Item], has_more: bool, include: Collection[str] = ()
) -> ConversationItemList:
    """A page of stored items as the API lists them (``include`` decides optional parts)."""
    return ConversationItemList(
        object="list",
        data=[CONVERSATION_ITEM.validate_python(shown(item, include)) for item in data],
        first_id=str(data[0]["id"]) if data else "",
        last_id=str(data[-1]["id"]) if data else "",
        has_more=has_more,
    )


class ConversationService:
    """Create, read, update and delete conversations and their items, per owner."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def _get(self, owner: str, conversation_id: str) -> StoredConversation:
        stored = await self.store.conversations.get(owner, conversation_id)
        if stored is None:
            raise _missing(conversation_id)
        return stored

    async def _normalize(self, owner: str, raw: list[Item], param: str) -> list[Item]:
        return await normalize_input(
            raw, lambda item_id: self.store.items.find(owner, item_id), param=param
        )

    async def create(
        self, owner: str, metadata: dict[str, str] | None, raw_items: list[Item] | None
    ) -> Conversation:
        entries = await self._normalize(owner, raw_items or [], "items")
        stored = await self.store.conversations.create(
            owner, new_id("conv"), metadata or {}, entries
        )
        return _conversation(stored)

    async def retrieve(self, owner: str, conversation_id: str) -> Conversation:
        return _conversation(await self._get(owner, conversation_id))

    async def update(
        self, owner: str, conversation_id: str, metadata: dict[str, str] | None
    ) -> Conversation:
        await self._get(owner, conversation_id)
        stored = await self.store.conversations.update(owner, conversation_id, metadata or {})
        assert stored is not None
        return _conversation(stored)

    async def delete(self, owner: str, conversation_id: str) -> ConversationDeletedResource:
        await self._get(owner, conversation_id)
        await self.store.conversations.delete(owner, conversation_id)
        return ConversationDeletedResource(
            id=conversation_id, object="conversation.deleted", deleted=True
        )

    async def add_items(
        self,
        owner: str,
        conversation_id: str,
        raw_items: list[Item],
        include: Collection[str] = (),
    ) -> ConversationItemList:
        await self._get(owner, conversation_id)
        entries = await self._normalize(owner, raw_items, "items")
        if not await self.store.conversations.append(owner, conversation_id, entries):
            raise _missing(conversation_id)
        return item_list(entries, False, include)

    async def list_items(
        self,
        owner: str,
        conversation_id: str,
        query: PageQuery = FIRST_PAGE,
        include: Collection[str] = (),
    ) -> ConversationItemList:
        await self._get(owner, conversation_id)
        page = await self.store.conversations.page(owner, conversation_id, query)
        return item_list(page.data, page.has_more, include)

    async def get_item(
        self, owner: str, conversation_id: str, item_id: str, include: Collection[str] = ()
    ) -> ConversationItem:
        await self._get(owner, conversation_id)
        item = await self.store.conversations.item(owner, conversation_id, item_id)
        if item is None:
            raise NotFoundError(f"Item with id '{item_id}' not found.", param="item_id")
        typed: ConversationItem = CONVERSATION_ITEM.validate_python(shown(item, include))
        return typed

    async def delete_item(self, owner: str, conversation_id: str, item_id: str) -> Conversation:
        stored = await self._get(owner, conversation_id)
        if not await self.store.conversations.delete_item(owner, conversation_id, item_id):
            raise NotFoundError(f"Item with id '{item_id}' not found.", param="item_id")
        return _conversation(stored)
