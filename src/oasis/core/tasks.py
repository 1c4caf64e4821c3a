"""Background tasks of the services (heartbeats, sweeps, batchers, workers): stopping them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel every task, then wait until each has unwound (its cancellation swallowed),
    so nothing it holds outlives the caller's ``close``."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
