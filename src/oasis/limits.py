"""Requests and tokens per minute, per key and per project, with OpenAI's headers.

The one limiter of oasis. Counts live in the database (:mod:`oasis.store.rate_windows`),
in fixed one-minute windows, so replicas sharing a PostgreSQL database share every budget:
per-process counts would let N replicas admit N times the limit. A request is admitted
while each of its scopes has requests left and has not spent its tokens; the tokens it
used are charged when its usage is recorded, so a request that finds the minute's tokens
spent gets 429 until the minute turns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from oasis.errors import RateLimitError
from oasis.store.rate_windows import Budget, Count, RateWindowRepository, Refused

WINDOW = 60  # seconds


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's rate-limit headers write it: ``120ms``, ``1.5s``, ``1m0s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


class Limiter:
    """Admits requests against their budgets and charges them their tokens."""

    def __init__(self) -> None:
        self._windows: RateWindowRepository | None = None
        self._swept = 0  # the last window whose older counts were dropped here

    def open(self, windows: RateWindowRepository) -> None:
        """Count in ``windows`` (the database opens after the app is built)."""
        self._windows = windows

    @property
    def windows(self) -> RateWindowRepository:
        if self._windows is None:
            raise RuntimeError("Limiter.open() must run before requests are served")
        return self._windows

    async def admit(self, budgets: Sequence[Budget]) -> list[tuple[bytes, bytes]]:
        """Count this request; the ``x-ratelimit-*`` headers, or a 429 with them."""
        budgets = [b for b in budgets if b.rpm is not None or b.tpm is not None]
        if not budgets:
            return []
        now = time.time()
        window = int(now // WINDOW) * WINDOW
        if window != self._swept:
            self._swept = window
            await self.windows.forget_before(window - WINDOW)
        reset = window + WINDOW - now
        try:
            counts = await self.windows.admit(budgets, window)
        except Refused as refused:
            raise _refusal(refused.count, reset) from None
        return [(k.encode(), v.encode()) for k, v in _headers(counts, reset).items()]

    async def charge(self, scopes: Sequence[str], tokens: int) -> None:
        """Add a finished request's tokens to its scopes' current minute."""
        window = int(time.time() // WINDOW) * WINDOW
        await self.windows.charge(scopes, window, tokens)


def _headers(counts: Sequence[Count], reset: float) -> dict[str, str]:
    """OpenAI's headers, for the scope closest to its limit (of requests; of tokens)."""
    headers: dict[str, str] = {}
    by_requests = [c for c in counts if c.budget.rpm is not None]
    if by_requests:
        tight = min(by_requests, key=lambda c: (c.budget.rpm or 0) - c.requests)
        headers["x-ratelimit-limit-requests"] = str(tight.budget.rpm)
        headers["x-ratelimit-remaining-requests"] = str(
            max(0, (tight.budget.rpm or 0) - tight.requests)
        )
        headers["x-ratelimit-reset-requests"] = go_duration(reset)
    by_tokens = [c for c in counts if c.budget.tpm is not None]
    if by_tokens:
        tight = min(by_tokens, key=lambda c: (c.budget.tpm or 0) - c.tokens)
        headers["x-ratelimit-limit-tokens"] = str(tight.budget.tpm)
        left = max(0, (tight.budget.tpm or 0) - tight.tokens)
        headers["x-ratelimit-remaining-tokens"] = str(left)
        headers["x-ratelimit-reset-tokens"] = go_duration(reset)
    return headers


def _refusal(count: Count, reset: float) -> RateLimitError:
    retry = max(1, math.ceil(reset))
    what = count.exhausted or "requests"
    # A config-file key's scope is its owner id; to the client it is simply its key.
    scope = "project" if count.budget.scope.startswith("project:") else "key"
    if what == "requests":
        message = (
            f"Rate limit reached for requests per min (RPM) on this {scope}: Limit "
            f"{count.budget.rpm}, Used {count.requests}, Requested 1. "
            f"Please try again in {retry}s."
        )
    else:
        message = (
            f"Rate limit reached for tokens per min (TPM) on this {scope}: Limit "
            f"{count.budget.tpm}, Used {count.tokens}. Please try again in {retry}s."
        )
    error = RateLimitError(message, retry_after=retry, headers=_headers([count], reset))
    error.error_type = what
    return error
