"""``POST /v1/completions`` (legacy text completions)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from oasis.api.deps import CompletionsDep
from oasis.api.sse import sse_response
from oasis.wire.base import dump
from oasis.wire.completions import CompletionRequest

router = APIRouter(tags=["completions"])


@router.post("/v1/completions", response_model=None)
async def create_completion(body: CompletionRequest, completions: CompletionsDep) -> Response:
    if body.stream:
        return sse_response(await completions.stream(body))
    completion = await completions.create(body)
    return Response(dump(completion), media_type="application/json")
