"""``GET /metrics``: Prometheus text format (no API key, like ``/health``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from oasis.api.deps import MetricsDep
from oasis.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_model=None)
async def metrics(registry: MetricsDep) -> Response:
    return Response(registry.render(), media_type=CONTENT_TYPE)
