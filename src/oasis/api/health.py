"""Health for load balancers, orchestrators and the test harness (no API key needed).

``/health/live``: the process is up and answering (restart it if not). ``/health/ready``:
it can serve: the database answers and the preloaded models are loaded and reachable
(send it traffic only then; 503 otherwise, naming what is missing). ``/health`` stays
what it always was: 200 once the server has started.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from oasis import __version__
from oasis.api.deps import ModelsDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/health/ready")
async def ready(request: Request, models: ModelsDep) -> JSONResponse:
    problems: list[str] = []
    try:
        async with request.app.state.store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        problems.append(f"database unreachable: {type(exc).__name__}")
    problems += await models.unready()
    body: dict[str, Any] = {"status": "ok" if not problems else "unavailable"}
    body["version"] = __version__
    if problems:
        body["problems"] = problems
    return JSONResponse(body, status_code=503 if problems else 200)
