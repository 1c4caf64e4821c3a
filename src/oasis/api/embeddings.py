"""``POST /v1/embeddings``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from oasis.api.deps import EmbeddingsDep
from oasis.wire.embeddings import EmbeddingRequest

router = APIRouter(tags=["embeddings"])


@router.post("/v1/embeddings", response_model=None)
async def create_embeddings(body: EmbeddingRequest, embeddings: EmbeddingsDep) -> Response:
    result = await embeddings.create(body)
    # warnings=False: a base64 vector is a string where the SDK type says List[float].
    payload = result.model_dump_json(exclude_unset=True, warnings=False)
    return Response(payload, media_type="application/json")
