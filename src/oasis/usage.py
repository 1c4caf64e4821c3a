"""Where each request's usage goes: a database row, the token limits, the metrics."""

from __future__ import annotations

from oasis.caller import Caller, UsageEntry
from oasis.limits import Limiter
from oasis.metrics import Metrics
from oasis.store.usage import UsageRepository


class UsageRecorder:
    """The :class:`~oasis.caller.UsageSink` of a running server."""

    def __init__(self, repository: UsageRepository, limiter: Limiter, metrics: Metrics) -> None:
        self.repository = repository
        self.limiter = limiter
        self.metrics = metrics

    async def record(self, caller: Caller, entry: UsageEntry) -> None:
        self.metrics.model_requests.labels(entry.model, entry.endpoint).inc()
        self.metrics.tokens.labels(entry.model, "input").inc(entry.input_tokens)
        self.metrics.tokens.labels(entry.model, "output").inc(entry.output_tokens)
        if entry.tool_calls:
            self.metrics.tool_calls.labels(entry.model).inc(entry.tool_calls)
        await self.repository.insert(caller.owner, caller.project_id, caller.key_id, entry)
        await self.limiter.charge(caller.charged_scopes, entry.tokens)
