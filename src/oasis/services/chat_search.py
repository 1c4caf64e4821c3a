"""Chat Completions' ``web_search_options``, as OpenAI's search models do it: before the
model answers, the user's last message is searched with the configured engine (the same
one, pages and budgets as the Responses ``web_search`` tool), the numbered sources go in
front of the conversation, and the answer's ``[n]`` marks become the message's
``url_citation`` annotations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import httpx

from oasis.core.conversation import Conversation, Message
from oasis.errors import InvalidRequestError
from oasis.tools.base import HostedCall, ToolContext, ToolResult
from oasis.tools.citations import Sources
from oasis.tools.outbound import UrlPolicy
from oasis.tools.registry import get_tool
from oasis.tools.web_search import NOT_CONFIGURED, WebSearchKind
from oasis.wire.chat import WebSearchOptions
from oasis.wire.responses import WebSearchToolParam

MAX_QUERY_CHARS = 400


@dataclass(frozen=True)
class ChatSearch:
    """What a chat search needs: the tools' outbound client and its policy."""

    http: httpx.AsyncClient
    urls: UrlPolicy

    async def ground(
        self, options: WebSearchOptions, conversation: Conversation, owner: str
    ) -> tuple[Conversation, Sources]:
        """``conversation`` with the search results in front, and their sources."""
        kind = get_tool("web_search")
        if not isinstance(kind, WebSearchKind) or kind.engine is None:
            raise InvalidRequestError(NOT_CONFIGURED, param="web_search_options")
        query = _last_user_text(conversation)[:MAX_QUERY_CHARS].strip()
        location = options.user_location.approximate.model_dump() if options.user_location else None
        param = WebSearchToolParam(
            type="web_search",
            search_context_size=options.search_context_size,
            user_location=location,
        )
        (tool,) = kind.configure([(0, param)])
        sources = Sources()
        context = ToolContext(self.http, owner, "", urls=self.urls, sources=sources)
        call = HostedCall("search", json.dumps({"query": query}), tool)
        digest = ""
        async for event in kind.run(call, context):
            if isinstance(event, ToolResult):
                digest = event.output
        note = (
            f"{digest}\n\nUse these results to answer the user. Cite a source by its number "
            "in square brackets, like [1]."
        )
        return _with_system_note(conversation, note), sources


def _last_user_text(conversation: Conversation) -> str:
    for message in reversed(conversation.messages):
        if message.role == "user" and message.content:
            return message.content
    raise InvalidRequestError(
        "web_search_options needs a user message to search for.", param="messages"
    )


def _with_system_note(conversation: Conversation, note: str) -> Conversation:
    """The note as the system message (joined to the one the client sent, if any): chat
    templates take one system message, at the start."""
    messages = list(conversation.messages)
    if messages and messages[0].role in {"system", "developer"}:
        messages[0] = replace(messages[0], content=f"{messages[0].content}\n\n{note}")
    else:
        messages.insert(0, Message(role="system", content=note))
    return replace(conversation, messages=tuple(messages))
