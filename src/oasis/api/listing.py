"""What the list, retrieve and delete routes of owned resources share.

:func:`page_query` reads a cursor list's query (``limit``, ``after``, and where the
endpoint takes them ``order`` and ``before``) into one
:class:`~oasis.store.pagination.PageQuery`; :func:`json_body` writes what a service
returns. A list route is then::

    FilePage = Annotated[PageQuery, Depends(page_query(limit=10_000, most=10_000))]

    @router.get("/v1/files", response_model=None)
    async def list_files(files: FilesDep, owner: OwnerDep, page: FilePage, purpose: ...):
        return json_body(await files.list(owner, page, purpose=purpose))

Each endpoint keeps its own defaults and takes only the parameters it took before: an
unknown query parameter is ignored, so a route that gained ``before`` silently would
start to answer differently.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the annotations of the
# signature built below as objects, and ``Query(le=most)`` exists only in this closure.

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import Query, Response
from pydantic import BaseModel

from oasis.store.pagination import PageQuery
from oasis.wire.base import dump

Order = Literal["asc", "desc"]


def page_query(
    *, limit: int = 20, most: int = 100, order: Order | None = "desc", before: bool = False
) -> Callable[..., Awaitable[PageQuery]]:
    """A dependency reading ``limit`` (1 to ``most``, default ``limit``) and ``after``;
    ``order`` too unless it is None (then the list is always newest first), and ``before``
    when asked."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter(
            "limit", keyword, default=limit, annotation=Annotated[int, Query(ge=1, le=most)]
        ),
        inspect.Parameter("after", keyword, default=None, annotation=str | None),
    ]
    if order is not None:
        params.append(inspect.Parameter("order", keyword, default=order, annotation=Order))
    if before:
        params.append(inspect.Parameter("before", keyword, default=None, annotation=str | None))

    async def dependency(**query: Any) -> PageQuery:
        return PageQuery(**query)

    dependency.__signature__ = inspect.Signature(params, return_annotation=PageQuery)  # type: ignore[attr-defined]
    return dependency


def json_body(value: BaseModel | dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """An ``openai`` type, one of our list envelopes or a plain dict as a 200's JSON body."""
    body = dump(value) if isinstance(value, BaseModel) else json.dumps(value)
    return Response(body, media_type="application/json", headers=headers)
