"""Where each request's usage goes: a database row, the token limits, the metrics."""

from __future__ import annotations

from oasis.caller import Caller, UsageEntry
from oasis.limits import Limiter
from oasis.metrics import Metrics
from oasis.store.usage import UsageRepository

# The usage kinds that are not one model request: a hosted tool's calls (``*_calls``),
# container sessions and changes in stored bytes.
TOOL_SUFFIX = "_calls"
NOT_MODEL_REQUESTS = frozenset({"code_interpreter_sessions", "vector_stores"})


def tool_kind(endpoint: str) -> str | None:
    """The tool whose calls a usage kind counts (``web_search_calls`` → ``web_search``)."""
    return endpoint.removesuffix(TOOL_SUFFIX) if endpoint.endswith(TOOL_SUFFIX) else None


class UsageRecorder:
    """The :class:`~oasis.caller.UsageSink` of a running server."""

    def __init__(self, repository: UsageRepository, limiter: Limiter, metrics: Metrics) -> None:
        self.repository = repository
        self.limiter = limiter
        self.metrics = metrics

    def count(self, entry: UsageEntry) -> None:
        """Count ``entry`` in the metrics."""
        tool = tool_kind(entry.endpoint)
        if tool is not None:
            self.metrics.tool_calls.labels(entry.model, tool).inc(entry.tool_calls)
        elif entry.endpoint == "code_interpreter_sessions":
            self.metrics.container_sessions.inc()
        elif entry.endpoint not in NOT_MODEL_REQUESTS:
            self.metrics.model_requests.labels(entry.model, entry.endpoint).inc()
            self.metrics.tokens.labels(entry.model, "input").inc(entry.input_tokens)
            self.metrics.tokens.labels(entry.model, "output").inc(entry.output_tokens)

    async def record(self, caller: Caller, entry: UsageEntry, *, stored: bool = False) -> None:
        self.count(entry)
        if not stored:
            await self.repository.insert(caller.owner, caller.project_id, caller.key_id, entry)
        await self.limiter.charge(caller.charged_scopes, entry.tokens)
