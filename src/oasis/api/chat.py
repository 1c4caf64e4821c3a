"""``POST /v1/chat/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from oasis.api.deps import ChatDep, OwnerDep
from oasis.api.sse import sse_response
from oasis.wire.base import dump
from oasis.wire.chat import ChatCompletionRequest

router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest, chat: ChatDep, owner: OwnerDep
) -> Response:
    if body.stream:
        return sse_response(await chat.stream(body, owner))
    completion = await chat.create(body, owner)
    return Response(dump(completion), media_type="application/json")
