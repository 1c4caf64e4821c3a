"""``POST /v1/responses/compact``: a long conversation folded into one ``compaction`` item.

The model summarizes the conversation; the answer's ``output`` is one ``compaction`` item
that holds the summary and every user message verbatim (OpenAI's keeps the user messages
as items of their own, which the SDK's output type cannot hold). Sent back as ``input``,
the item reads to the model as those user messages followed by the summary.

``encrypted_content`` here is base64 JSON, opaque to clients but not encrypted: anyone
holding the item can read it, as anyone holding the conversation could.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from openai.types.responses.compacted_response import CompactedResponse

from oasis.core.conversation import Conversation, Message
from oasis.core.events import Finished
from oasis.core.options import GenerationOptions
from oasis.core.types import SamplingParams
from oasis.errors import InvalidRequestError
from oasis.ids import new_id
from oasis.responses.events import usage
from oasis.services.generation import GenerationCore

Item = dict[str, Any]

SUMMARY_REQUEST = (
    "Summarize the conversation so far for your own later use, in a few sentences: the "
    "facts, decisions, results of tool calls and open questions. Write only the summary."
)
SUMMARY_TOKENS = 256
_TAG = "oasis.compaction.v1"


def compaction_item(summary: str, user_messages: list[str]) -> Item:
    """The ``compaction`` output item that stands for a compacted conversation."""
    payload = {"format": _TAG, "summary": summary, "user_messages": user_messages}
    content = base64.b64encode(json.dumps(payload, ensure_ascii=False).encode()).decode()
    return {"id": new_id("cmp"), "type": "compaction", "encrypted_content": content}


def expand(item: Item, path: str = "input") -> list[Message]:
    """A ``compaction`` input item as the messages it stands for; 400 if it was not made
    by this server."""
    try:
        payload = json.loads(base64.b64decode(str(item.get("encrypted_content")), validate=True))
    except (binascii.Error, ValueError):
        payload = None
    if not isinstance(payload, dict) or payload.get("format") != _TAG:
        raise InvalidRequestError(
            "This compaction item was not made by this server's /v1/responses/compact.",
            param=f"{path}.encrypted_content",
            code="invalid_value",
        )
    messages = [Message(role="user", content=str(text)) for text in payload["user_messages"]]
    summary = f"(Summary of the conversation so far.) {payload['summary']}"
    return [*messages, Message(role="assistant", content=summary)]


def user_texts(entries: list[Item]) -> list[str]:
    """The text of every user message in ``entries``, oldest first (those inside earlier
    compaction items included)."""
    texts: list[str] = []
    for item in entries:
        if item.get("type") == "compaction":
            texts += [m.content for m in expand(item) if m.role == "user"]
        elif item.get("type") == "message" and item.get("role") == "user":
            content = item.get("content") or []
            texts.append("".join(str(part.get("text", "")) for part in content))
    return texts


async def compact(
    core: GenerationCore,
    model: str,
    conversation: Conversation,
    entries: list[Item],
    owner: str | None = None,
) -> CompactedResponse:
    """Summarize ``conversation`` (the prompt form of ``entries``) with ``model``; the
    answer of ``POST /v1/responses/compact`` (``owner``: whose files its images are)."""
    asking = Conversation((*conversation.messages, Message(role="user", content=SUMMARY_REQUEST)))
    prompt = await core.prepare(model, asking, GenerationOptions(), param="input", owner=owner)
    params = SamplingParams(
        max_tokens=core.max_new_tokens(prompt, SUMMARY_TOKENS), temperature=0.0, top_p=1.0
    )
    finished: Finished | None = None
    async for event in core.generate(prompt, params):
        if isinstance(event, Finished):
            finished = event
    assert finished is not None  # every generation ends with one
    item = compaction_item(finished.text.strip(), user_texts(entries))
    return CompactedResponse.model_validate(
        {
            "id": new_id("resp"),
            "object": "response.compaction",
            "created_at": int(time.time()),
            "output": [item],
            "usage": usage(
                finished.prompt_tokens,
                finished.completion_tokens,
                cached_tokens=finished.cached_tokens,
            ),
        }
    )
