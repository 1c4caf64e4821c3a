"""Stored Chat Completions: what ``store: true`` keeps, and the API that reads it back.

A stored completion is the completion exactly as its client received it (a streamed one
as the folded whole, :mod:`oasis.services.chat_fold`) plus the request's ``metadata``,
and the request's messages, each with an id (``<completion id>-<index>``, as OpenAI
numbers them). Everything is owned by the API key that made it: another key's id is a 404.
"""

from __future__ import annotations

import json
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionDeleted
from pydantic import BaseModel

from oasis.errors import NotFoundError, found
from oasis.store.chat_completions import ChatCompletionRepository, StoredChatCompletion
from oasis.store.pagination import PageQuery
from oasis.wire.base import dump
from oasis.wire.chat import ChatCompletionRequest, ChatMessage
from oasis.wire.chat_store import ChatCompletionList, ChatCompletionMessageList
from oasis.wire.lists import cursor_list

# Message fields echoed only when the client sent them (the others are always present).
_OPTIONAL_FIELDS = ("tool_calls", "function_call", "tool_call_id", "refusal")


def missing(completion_id: str) -> NotFoundError:
    """The 404 for an id that the caller's key has stored no completion under."""
    return NotFoundError(
        f"No chat completion found with id '{completion_id}'.", param="completion_id"
    )


def stored_message(message: ChatMessage, message_id: str) -> dict[str, Any]:
    """A request message as the messages list returns it.

    Content sent as parts comes back as ``content_parts`` (text and images) with their
    text joined in ``content``, so a reader of ``content`` sees the text either way.
    """
    content = message.content
    parts: list[dict[str, Any]] | None = None
    if isinstance(content, list):
        parts = []
        for part in content:
            if part.type == "text" and part.text is not None:
                parts.append({"type": "text", "text": part.text})
            elif part.type == "image_url" and part.image_url is not None:
                image = part.image_url.model_dump(exclude_none=True, include={"url", "detail"})
                parts.append({"type": "image_url", "image_url": image})
        content = "".join(part["text"] for part in parts if part["type"] == "text")
    data: dict[str, Any] = {
        "id": message_id,
        "role": message.role,
        "content": content,
        "name": message.name,
        "content_parts": parts,
    }
    for name in _OPTIONAL_FIELDS:
        if message.field_given(name):
            value = getattr(message, name)
            data[name] = (
                [call.model_dump(exclude_none=True) for call in value]
                if isinstance(value, list)
                else value.model_dump(exclude_none=True)
                if isinstance(value, BaseModel)
                else value
            )
    return data


def _completion(stored: StoredChatCompletion) -> ChatCompletion:
    """The stored completion with its metadata as it is now (an extra field of the SDK's
    type, which it keeps)."""
    return ChatCompletion.model_validate({**stored.body, "metadata": stored.metadata})


class StoredChatCompletions:
    """Keeps completions made with ``store: true``; lists, reads, updates and deletes them."""

    def __init__(self, repo: ChatCompletionRepository) -> None:
        self.repo = repo

    async def keep(
        self, owner: str, request: ChatCompletionRequest, completion: ChatCompletion
    ) -> None:
        """Store ``completion``, the answer to ``request``, for ``owner``."""
        body = json.loads(dump(completion))
        messages = [
            stored_message(message, f"{completion.id}-{i}")
            for i, message in enumerate(request.messages)
        ]
        await self.repo.insert(owner, body, request.metadata or {}, messages)

    async def get(self, owner: str, completion_id: str) -> ChatCompletion:
        return _completion(found(await self.repo.get(owner, completion_id), missing(completion_id)))

    async def list(
        self,
        owner: str,
        query: PageQuery,
        *,
        model: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ChatCompletionList:
        """A page of the owner's stored completions in creation order, as ``query`` asks."""
        page = await self.repo.page(owner, query, model=model, metadata=metadata or {})
        data = [_completion(stored) for stored in page.data]
        return cursor_list(ChatCompletionList, data, page.has_more)

    async def update(
        self, owner: str, completion_id: str, metadata: dict[str, str] | None
    ) -> ChatCompletion:
        """Replace the completion's metadata (null clears it)."""
        stored = await self.repo.set_metadata(owner, completion_id, metadata or {})
        if stored is None:
            raise missing(completion_id)
        return _completion(stored)

    async def delete(self, owner: str, completion_id: str) -> ChatCompletionDeleted:
        if not await self.repo.delete(owner, completion_id):
            raise missing(completion_id)
        return ChatCompletionDeleted(
            id=completion_id, object="chat.completion.deleted", deleted=True
        )

    async def messages(
        self, owner: str, completion_id: str, query: PageQuery
    ) -> ChatCompletionMessageList:
        """A page of the messages the completion was asked with."""
        found(await self.repo.get(owner, completion_id), missing(completion_id))
        page = await self.repo.messages(owner, completion_id, query)
        return cursor_list(ChatCompletionMessageList, page.data, page.has_more)
