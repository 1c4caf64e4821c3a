"""The Usage API (``/v1/organization/usage/*``): recorded usage summed per time bucket."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from openai.types.admin.organization.usage_completions_response import (
    Data,
    DataResult,
    DataResultOrganizationUsageAudioSpeechesResult,
    DataResultOrganizationUsageAudioTranscriptionsResult,
    DataResultOrganizationUsageCompletionsResult,
    DataResultOrganizationUsageEmbeddingsResult,
    DataResultOrganizationUsageImagesResult,
    UsageCompletionsResponse,
)

from oasis.errors import InvalidRequestError, NotFoundError
from oasis.store.usage import GROUP_COLUMNS, UsageFilter, UsageRepository, UsageSum

KINDS = ("completions", "embeddings", "images", "audio_speeches", "audio_transcriptions")
# Bucket width: (seconds, default number of buckets, most buckets per page), as OpenAI's.
WIDTHS = {"1m": (60, 60, 1440), "1h": (3600, 24, 168), "1d": (86400, 7, 31)}
_PAGE = "page_"


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


def _result(kind: str, total: UsageSum) -> DataResult:
    project_id = total.groups.get("project_id")
    api_key_id = total.groups.get("api_key_id")
    model = total.groups.get("model")
    sums = total.totals
    requests = total.requests
    if kind == "completions":
        return DataResultOrganizationUsageCompletionsResult(
            object="organization.usage.completions.result",
            input_tokens=int(sums["input_tokens"]),
            input_cached_tokens=int(sums["cached_tokens"]),
            input_uncached_tokens=int(sums["input_tokens"] - sums["cached_tokens"]),
            output_tokens=int(sums["output_tokens"]),
            input_audio_tokens=0,
            output_audio_tokens=0,
            num_model_requests=requests,
            project_id=project_id,
            api_key_id=api_key_id,
            model=model,
        )
    if kind == "embeddings":
        return DataResultOrganizationUsageEmbeddingsResult(
            object="organization.usage.embeddings.result",
            input_tokens=int(sums["input_tokens"]),
            num_model_requests=requests,
            project_id=project_id,
            api_key_id=api_key_id,
            model=model,
        )
    if kind == "images":
        return DataResultOrganizationUsageImagesResult(
            object="organization.usage.images.result",
            images=int(sums["images"]),
            num_model_requests=requests,
            project_id=project_id,
            api_key_id=api_key_id,
            model=model,
        )
    if kind == "audio_speeches":
        return DataResultOrganizationUsageAudioSpeechesResult(
            object="organization.usage.audio_speeches.result",
            characters=int(sums["characters"]),
            num_model_requests=requests,
            project_id=project_id,
            api_key_id=api_key_id,
            model=model,
        )
    return DataResultOrganizationUsageAudioTranscriptionsResult(
        object="organization.usage.audio_transcriptions.result",
        seconds=round(sums["seconds"]),
        num_model_requests=requests,
        project_id=project_id,
        api_key_id=api_key_id,
        model=model,
    )


class UsageReport:
    """Answers Usage API queries from the usage records."""

    def __init__(self, repository: UsageRepository) -> None:
        self.repository = repository

    async def buckets(self, query: UsageQuery) -> UsageCompletionsResponse:
        if query.kind not in KINDS:
            raise NotFoundError(f"Unknown usage kind `{query.kind}`; oasis records {KINDS}.")
        if query.bucket_width not in WIDTHS:
            raise InvalidRequestError(
                f"`bucket_width` must be one of {sorted(WIDTHS)}.", param="bucket_width"
            )
        for name in query.group_by:
            if name not in GROUP_COLUMNS:
                raise InvalidRequestError(
                    f"oasis cannot group usage by `{name}`; it records {', '.join(GROUP_COLUMNS)}.",
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
        )
        by_bucket: dict[int, list[DataResult]] = {}
        for total in sums:
            by_bucket.setdefault(total.bucket, []).append(_result(query.kind, total))
        data = []
        for index, bucket_start in enumerate(range(first, last, width)):
            data.append(
                Data(
                    object="bucket",
                    start_time=bucket_start,
                    end_time=bucket_start + width,
                    results=by_bucket.get(index, []),
                )
            )
        more = last < end
        return UsageCompletionsResponse(
            object="page",
            data=data,
            has_more=more,
            next_page=f"{_PAGE}{last}" if more else None,
        )


def _page_start(page: str, first: int, end: int) -> int:
    value = page.removeprefix(_PAGE)
    if not page.startswith(_PAGE) or not value.isdigit() or not first <= int(value) < end:
        raise InvalidRequestError(
            "`page` must be a `next_page` value from an earlier answer to this query.",
            param="page",
        )
    return int(value)
