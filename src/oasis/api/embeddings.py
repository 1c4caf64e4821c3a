"""``POST /v1/embeddings``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from openai.types import CreateEmbeddingResponse

from oasis.api.deps import EmbeddingsDep
from oasis.wire.embeddings import EmbeddingRequest

router = APIRouter(tags=["embeddings"])


def embeddings_json(result: CreateEmbeddingResponse) -> str:
    """The response body of ``POST /v1/embeddings`` (also a batch line's)."""
    # warnings=False: a base64 vector is a string where the SDK type says List[float].
    return result.model_dump_json(exclude_unset=True, warnings=False)


@router.post("/v1/embeddings", response_model=None)
async def create_embeddings(body: EmbeddingRequest, embeddings: EmbeddingsDep) -> Response:
    result = await embeddings.create(body)
    return Response(embeddings_json(result), media_type="application/json")
