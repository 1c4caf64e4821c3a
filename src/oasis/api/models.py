"""``GET /v1/models`` and ``GET /v1/models/{model}`` (ids may contain ``/``)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Response
from openai.types import Model
from openai.types.model_deleted import ModelDeleted

from oasis.api.deps import ModelsDep
from oasis.errors import PermissionDeniedError
from oasis.models.registry import ResolvedModel
from oasis.wire.base import dump

router = APIRouter(tags=["models"])


def _model(entry: ResolvedModel) -> Model:
    return Model(
        id=entry.name, object="model", created=entry.spec.created, owned_by=entry.spec.owned_by
    )


@router.get("/v1/models")
async def list_models(models: ModelsDep) -> Response:
    data = [
        _model(entry).model_dump(exclude_unset=True) for entry in models.registry.served_names()
    ]
    return Response(json.dumps({"object": "list", "data": data}), media_type="application/json")


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, models: ModelsDep) -> Response:
    return Response(dump(_model(models.resolve(model))), media_type="application/json")


@router.delete("/v1/models/{model:path}")
async def delete_model(model: str, models: ModelsDep) -> ModelDeleted:
    models.resolve(model)  # 404 for unknown models before 403 for known ones
    raise PermissionDeniedError(
        f"The model `{model}` is served from local files and cannot be deleted through the API.",
        param="model",
    )
