"""Line results stored several to a transaction (group commit).

Lines of a batch finish concurrently; each result waits while the write before it runs and
then goes in with every other result that arrived meanwhile, in one transaction. An idle
batch so writes each line at once, and a busy one (an embeddings pass that ends dozens of
lines together) pays one commit for many lines instead of one each.
"""

from __future__ import annotations

import asyncio

from oasis.store.batches import BatchRepository, LineResult
from oasis.store.leases import Fence


class LineWriter:
    """Stores one batch's line results for its runner, under the runner's lease."""

    def __init__(self, repo: BatchRepository, batch_id: str, fence: Fence | None) -> None:
        self.repo = repo
        self.batch_id = batch_id
        self.fence = fence
        self._waiting: list[tuple[LineResult, asyncio.Future[bool]]] = []
        self._lock = asyncio.Lock()

    async def write(self, result: LineResult) -> bool:
        """Store ``result`` once its group is committed; True if this wrote the line (False:
        it was done already). Raises :class:`~oasis.store.leases.LeaseLost` when another
        replica has taken the batch over: then nothing of the group was written."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((result, done))
        async with self._lock:
            if self._waiting:  # else an earlier holder of the lock wrote this one
                group, self._waiting = self._waiting, []
                try:
                    written = set(
                        await self.repo.finish_lines(
                            self.batch_id, [item for item, _ in group], self.fence
                        )
                    )
                except Exception as exc:  # every line of the group hears of it
                    for _, future in group:
                        future.set_exception(exc)
                except BaseException:  # cancelled at shutdown: the lines stay pending
                    for _, future in group:
                        future.cancel()
                    raise
                else:
                    for item, future in group:
                        future.set_result(item.line in written)
        return await done
