"""The Usage API (``/v1/organization/usage/*``): recorded usage summed per time bucket.

Each kind is a row of :data:`KINDS`: the result type the SDK defines for it, the usage
records it sums, and how a bucket's sums become the result's fields. Every kind but
``vector_stores`` counts what happened within each bucket; ``vector_stores`` is a level
(the bytes stored at the bucket's end), summed from the changes recorded with each write
that changed a store's files since the first record, so it is exact for every bucket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from openai.types.admin.organization.usage_completions_response import (
    Data,
    DataResult,
    DataResultOrganizationUsageAudioSpeechesResult,
    DataResultOrganizationUsageAudioTranscriptionsResult,
    DataResultOrganizationUsageCodeInterpreterSessionsResult,
    DataResultOrganizationUsageCompletionsResult,
    DataResultOrganizationUsageEmbeddingsResult,
    DataResultOrganizationUsageFileSearchesResult,
    DataResultOrganizationUsageImagesResult,
    DataResultOrganizationUsageVectorStoresResult,
    DataResultOrganizationUsageWebSearchesResult,
    UsageCompletionsResponse,
)
from pydantic import BaseModel

from oasis.errors import InvalidRequestError, NotFoundError
from oasis.store.usage import BEFORE, GROUP_COLUMNS, UsageFilter, UsageRepository, UsageSum

# Bucket width: (seconds, default number of buckets, most buckets per page), as OpenAI's.
WIDTHS = {"1m": (60, 60, 1440), "1h": (3600, 24, 168), "1d": (86400, 7, 31)}
_PAGE = "page_"

Fields = Callable[[dict[str, float], int], dict[str, Any]]  # (sums, rows) → result fields


@dataclass(frozen=True)
class Kind:
    """One Usage API kind: its result type, the records it sums and their fields."""

    result: type[BaseModel]  # one of the types of DataResult
    fields: Fields
    level: bool = False  # a level at each bucket's end, not a count within it

    @property
    def groups(self) -> tuple[str, ...]:
        """What this kind's results can be grouped by (the fields its type has)."""
        return tuple(name for name in GROUP_COLUMNS if name in self.result.model_fields)


def _requests(fields: Fields) -> Fields:
    return lambda sums, rows: {"num_model_requests": rows, **fields(sums, rows)}


KINDS: dict[str, Kind] = {
    "completions": Kind(
        DataResultOrganizationUsageCompletionsResult,
        _requests(
            lambda s, _: {
                "input_tokens": int(s["input_tokens"]),
                "input_cached_tokens": int(s["cached_tokens"]),
                "input_uncached_tokens": int(s["input_tokens"] - s["cached_tokens"]),
                "output_tokens": int(s["output_tokens"]),
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
            }
        ),
    ),
    "embeddings": Kind(
        DataResultOrganizationUsageEmbeddingsResult,
        _requests(lambda s, _: {"input_tokens": int(s["input_tokens"])}),
    ),
    "images": Kind(
        DataResultOrganizationUsageImagesResult,
        _requests(lambda s, _: {"images": int(s["images"])}),
    ),
    "audio_speeches": Kind(
        DataResultOrganizationUsageAudioSpeechesResult,
        _requests(lambda s, _: {"characters": int(s["characters"])}),
    ),
    "audio_transcriptions": Kind(
        DataResultOrganizationUsageAudioTranscriptionsResult,
        _requests(lambda s, _: {"seconds": round(s["seconds"])}),
    ),
    # One record per model request that searched, its number of searches in tool_calls.
    "web_search_calls": Kind(
        DataResultOrganizationUsageWebSearchesResult,
        _requests(lambda s, _: {"num_requests": int(s["tool_calls"])}),
    ),
    "file_search_calls": Kind(
        DataResultOrganizationUsageFileSearchesResult,
        lambda s, _: {"num_requests": int(s["tool_calls"])},
    ),
    # One record per container created: a container is one session until it expires.
    "code_interpreter_sessions": Kind(
        DataResultOrganizationUsageCodeInterpreterSessionsResult,
        lambda _, rows: {"num_sessions": rows},
    ),
    "vector_stores": Kind(
        DataResultOrganizationUsageVectorStoresResult,
        lambda s, _: {"usage_bytes": int(s["bytes"])},
        level=True,
    ),
}


def _result(name: str, kind: Kind, total: UsageSum) -> DataResult:
    fields = kind.fields(total.totals, total.requests)
    groups = {group: total.groups.get(group) for group in kind.groups}
    result = kind.result.model_validate(
        {"object": f"organization.usage.{_object_name(name)}.result", **groups, **fields}
    )
    return cast(DataResult, result)


def _object_name(kind: str) -> str:
    """The result's ``object`` infix: OpenAI's search kinds drop ``_calls``."""
    return {"web_search_calls": "web_searches", "file_search_calls": "file_searches"}.get(
        kind, kind
    )


@dataclass(frozen=True)
class UsageQuery:
    """A Usage API request, as its query string gave it."""

    kind: str
    start_time: int
    end_time: int | None = None
    bucket_width: str = "1d"
    group_by: Sequence[str] = ()
    limit: int | None = None
    page: str | None = None
    where: UsageFilter = UsageFilter()


class UsageReport:
    """Answers Usage API queries from the usage records."""

    def __init__(self, repository: UsageRepository) -> None:
        self.repository = repository

    async def buckets(self, query: UsageQuery) -> UsageCompletionsResponse:
        kind = KINDS.get(query.kind)
        if kind is None:
            raise NotFoundError(
                f"Unknown usage kind `{query.kind}`; oasis records {', '.join(KINDS)}."
            )
        if query.bucket_width not in WIDTHS:
            raise InvalidRequestError(
                f"`bucket_width` must be one of {sorted(WIDTHS)}.", param="bucket_width"
            )
        for name in query.group_by:
            if name not in kind.groups:
                raise InvalidRequestError(
                    f"oasis cannot group {query.kind} usage by `{name}`; "
                    f"it records {', '.join(kind.groups)}.",
                    param="group_by",
                )
        width, default_limit, most = WIDTHS[query.bucket_width]
        limit = query.limit if query.limit is not None else default_limit
        if not 1 <= limit <= most:
            raise InvalidRequestError(
                f"`limit` must be between 1 and {most} for bucket_width {query.bucket_width}.",
                param="limit",
            )
        end = query.end_time if query.end_time is not None else int(time.time()) + 1
        if end <= query.start_time:
            raise InvalidRequestError("`end_time` must be after `start_time`.", param="end_time")
        first = (query.start_time // width) * width  # buckets start on whole minutes/hours/days
        if query.page is not None:
            first = _page_start(query.page, first, end)
        last = min(end, first + limit * width)
        sums = await self.repository.sums(
            query.kind,
            max(first, query.start_time),
            last,
            width,
            query.group_by,
            query.where,
            origin=first,
            since_ever=kind.level,
        )
        results = _levels(query.kind, kind, sums) if kind.level else _counts(query.kind, kind, sums)
        data = [
            Data(
                object="bucket",
                start_time=bucket_start,
                end_time=bucket_start + width,
                results=results(index),
            )
            for index, bucket_start in enumerate(range(first, last, width))
        ]
        more = last < end
        return UsageCompletionsResponse(
            object="page",
            data=data,
            has_more=more,
            next_page=f"{_PAGE}{last}" if more else None,
        )


def _counts(name: str, kind: Kind, sums: list[UsageSum]) -> Callable[[int], list[DataResult]]:
    """Results per bucket: what was recorded within it."""
    by_bucket: dict[int, list[DataResult]] = {}
    for total in sums:
        by_bucket.setdefault(total.bucket, []).append(_result(name, kind, total))
    return lambda index: by_bucket.get(index, [])


def _levels(name: str, kind: Kind, sums: list[UsageSum]) -> Callable[[int], list[DataResult]]:
    """Results per bucket: the running sum of the changes up to its end, per group (every
    group that has any change up to then, a level of 0 included)."""
    changes: dict[int, list[UsageSum]] = {}
    for total in sums:
        changes.setdefault(total.bucket, []).append(total)
    level: dict[tuple[tuple[str, str | None], ...], UsageSum] = {}

    def add(bucket: int) -> None:
        for change in changes.get(bucket, []):
            group = tuple(sorted(change.groups.items()))
            held = level.get(group)
            totals = dict(change.totals)
            if held is not None:
                totals = {key: held.totals[key] + value for key, value in totals.items()}
            level[group] = UsageSum(bucket, change.groups, change.requests, totals)

    add(BEFORE)
    reached = BEFORE

    def results(index: int) -> list[DataResult]:
        nonlocal reached
        while reached < index:  # buckets are asked for in order
            reached += 1
            add(reached)
        return [_result(name, kind, level[group]) for group in sorted(level, key=str)]

    return results


def _page_start(page: str, first: int, end: int) -> int:
    value = page.removeprefix(_PAGE)
    if not page.startswith(_PAGE) or not value.isdigit() or not first <= int(value) < end:
        raise InvalidRequestError(
            "`page` must be a `next_page` value from an earlier answer to this query.",
            param="page",
        )
    return int(value)
