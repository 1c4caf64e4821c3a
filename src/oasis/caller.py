"""Who is calling: the request's key, project and limits, and where its usage goes.

The auth middleware builds one :class:`Caller` per request and sets it in
:data:`current_caller`; the services report what a request used with
:func:`record_usage` at the one place each already computes ``usage``, and ask
:func:`token_ceiling` for the project's cap on output tokens. A context variable (copied
into the tasks a request starts, such as its stream or background job) keeps the services'
signatures as they are: they take an opaque ``owner`` and nothing else about keys.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageEntry:
    """What one request used. ``endpoint`` is the Usage API's kind (``completions``,
    ``embeddings``, ``images``, ``audio_speeches``, ``audio_transcriptions``,
    ``code_interpreter_sessions``, ``vector_stores``) or, for a hosted tool's calls, the
    call item's type in the plural (``web_search_calls``, ``mcp_calls``, ...), with their
    number in ``tool_calls``. ``bytes`` is a change in stored bytes (vector stores)."""

    endpoint: str
    model: str
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    characters: int = 0
    seconds: float = 0.0
    images: int = 0
    tool_calls: int = 0
    bytes: int = 0

    @property
    def tokens(self) -> int:
        """What counts against a tokens-per-minute limit."""
        return self.input_tokens + self.output_tokens


class UsageSink(Protocol):
    """Where usage goes (the database, the metrics, the limits)."""

    async def record(self, caller: Caller, entry: UsageEntry, *, stored: bool = False) -> None:
        """Store ``entry`` as ``caller``'s, count it in the metrics and charge the limits.
        ``stored``: the work that used it already stored it, in the transaction that stored
        its result (a batch line, a background response); only count and charge."""
        ...


@dataclass(frozen=True)
class UsageRow:
    """One usage record as stored: what was used and by whom."""

    owner: str
    project_id: str | None
    key_id: str | None
    entry: UsageEntry


@dataclass
class Caller:
    """One request's credentials as resolved, and what it used (for the access log)."""

    owner: str
    key_id: str | None = None
    project_id: str | None = None
    admin: bool = False
    max_tokens: int | None = None  # the project's ceiling on output tokens per request
    charged_scopes: tuple[str, ...] = ()  # rate-limit scopes whose tokens this request adds to
    sink: UsageSink | None = None
    used: list[UsageEntry] = field(default_factory=list)

    @property
    def model(self) -> str | None:
        # Container sessions and stored bytes name no model.
        return next((entry.model for entry in reversed(self.used) if entry.model), None)

    @property
    def input_tokens(self) -> int:
        return sum(entry.input_tokens for entry in self.used)

    @property
    def output_tokens(self) -> int:
        return sum(entry.output_tokens for entry in self.used)


current_caller: ContextVar[Caller | None] = ContextVar("oasis_caller", default=None)


async def record_usage(entry: UsageEntry, *, stored: bool = False) -> None:
    """Record what this request used. Without a caller (an in-process embedder)
    nothing is recorded; a failed write is logged, never raised:
    the client already has its answer."""
    caller = current_caller.get()
    if caller is None:
        return
    caller.used.append(entry)
    if caller.sink is None:
        return
    try:
        await caller.sink.record(caller, entry, stored=stored)
    except Exception:
        log.exception("could not record usage of %s on %s", entry.model, entry.endpoint)


def usage_rows(entries: list[UsageEntry]) -> list[UsageRow]:
    """``entries`` as this request's usage records (none without a caller), for work that
    stores its usage in the same transaction as its result, so it is stored exactly once."""
    caller = current_caller.get()
    if caller is None:
        return []
    return [UsageRow(caller.owner, caller.project_id, caller.key_id, e) for e in entries]


async def count_usage(entries: list[UsageEntry]) -> None:
    """Report usage that :func:`usage_rows`' transaction stored to the metrics and limits
    (as :func:`record_usage` does, less the write)."""
    for entry in entries:
        await record_usage(entry, stored=True)


def token_ceiling() -> int | None:
    """The calling project's ceiling on one request's output tokens, if it has one."""
    caller = current_caller.get()
    return None if caller is None else caller.max_tokens
