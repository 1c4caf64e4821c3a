"""``GET /v1/organization/usage/{kind}``: the Usage API, for admin keys."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from oasis.api.deps import UsageReportDep
from oasis.errors import InvalidRequestError
from oasis.services.usage_report import UsageQuery
from oasis.store.usage import UsageFilter
from oasis.wire.base import dump

router = APIRouter(tags=["usage"])


def _list(request: Request, name: str) -> list[str]:
    """A list parameter, as ``name=a&name=b`` or as the SDK's ``name[]=a``."""
    params = request.query_params
    return [*params.getlist(name), *params.getlist(f"{name}[]")]


def _int(request: Request, name: str, *, required: bool = False) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        if required:
            raise InvalidRequestError(
                f"Missing required parameter: '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequestError(f"`{name}` must be an integer.", param=name) from None


@router.get("/v1/organization/usage/{kind}", response_model=None)
async def usage(kind: str, request: Request, report: UsageReportDep) -> Response:
    start_time = _int(request, "start_time", required=True)
    assert start_time is not None
    query = UsageQuery(
        kind=kind,
        start_time=start_time,
        end_time=_int(request, "end_time"),
        bucket_width=request.query_params.get("bucket_width", "1d"),
        group_by=_list(request, "group_by"),
        limit=_int(request, "limit"),
        page=request.query_params.get("page"),
        where=UsageFilter(
            project_ids=_list(request, "project_ids"),
            key_ids=_list(request, "api_key_ids"),
            models=_list(request, "models"),
        ),
    )
    return Response(dump(await report.buckets(query)), media_type="application/json")
