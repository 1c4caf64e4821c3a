"""Runs batches: one task per batch, walking its durable state machine to an end.

Each step reads the batch's row and does what its status asks, then the loop reads the row
again, so a restart (which starts a task for every unfinished batch) resumes at the same
step. ``validating`` checks the input file and stores its lines; ``in_progress`` runs the
lines not yet done, at most ``concurrency`` at once across all batches, each through the
endpoint's own service (the ``dispatch`` callable, built by the HTTP layer) at background
priority; ``finalizing`` / ``cancelling`` / an expiry write the output and error files.
A line's output is stored in the transaction that marks it done (lines that end together
share one, :mod:`oasis.services.batch_writes`): a line done is never run again.

With replicas (:mod:`oasis.services.leases`) a batch runs where its lease is held; a
cancel that arrives at another replica reaches the holder as a stop request, and the
batches of a replica that died are adopted by the others' sweeps and resumed. Every write
the runner makes carries its lease's fence: a replica that stalled past its lease while
another took the batch over finds its late results refused, so each line's result is
stored once, by the holder of the day, and ``request_counts`` match the files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from oasis.caller import Caller, UsageEntry, UsageRow, current_caller
from oasis.engines.worker import lower_priority
from oasis.errors import NotFoundError, PreemptedError
from oasis.ids import new_id
from oasis.services.batch_input import MAX_BYTES, check_input
from oasis.services.batch_writes import LineWriter
from oasis.services.files import FilesService
from oasis.services.leases import Leases
from oasis.store.batches import (
    BatchRepository,
    LineResult,
    LineTokens,
    PendingLine,
    StoredBatch,
)
from oasis.store.leases import Fence, LeaseLost
from oasis.store.usage import UsageRepository, WorkCaller

log = logging.getLogger(__name__)

# ``(owner, url, body)`` → the status code and JSON body the endpoint answers with.
Dispatch = Callable[[str, str, dict[str, Any]], Awaitable[tuple[int, Any]]]

# The end state each finishing status leads to once the files are written.
_ENDS = {"finalizing": "completed", "cancelling": "cancelled", "in_progress": "expired"}
_CHUNK = 64 * 1024
# Output files are as large as the batch's answers; the file size setting bounds uploads.
_UNBOUNDED = 1 << 62
_PAGE = 256
LEASE = "batch"  # the lease kind of a batch
# Endpoints whose lines may be stopped part-way and run again (no side effects, nothing
# stored before the answer): their lines may use a model's last thread, given up to a
# live request that needs it (see oasis.engines.worker).
RERUNNABLE = frozenset({"/v1/chat/completions", "/v1/completions"})


class BatchRunner:
    """The running batches of this process."""

    def __init__(
        self,
        repo: BatchRepository,
        files: FilesService,
        dispatch: Dispatch,
        *,
        concurrency: int,
        leases: Leases | None = None,
        usage: UsageRepository | None = None,
        count_usage: Callable[[UsageEntry], None] | None = None,
    ) -> None:
        self.repo = repo
        self.usage = usage  # who asked for each batch: its lines' usage is theirs
        self.count_usage = count_usage  # the metrics of the usage this process records
        self.leases = leases or Leases(None)
        self.files = files
        self.dispatch = dispatch
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        # Line results being stored; a cancel or shutdown waits for them (see _run_line).
        self._writes: set[asyncio.Future[bool]] = set()
        self.closing = False
        # Lines this process finished, by outcome (for the metrics' batch progress).
        self.lines_done: dict[str, int] = {"completed": 0, "failed": 0}
        self.lines_rerun = 0  # lines stopped part-way for a live request and run again
        self.leases.on_stop(LEASE, self._stop_requested)

    @property
    def running(self) -> int:
        """How many batches this process is running now."""
        return len(self._tasks)

    async def remember_caller(self, batch_id: str) -> None:
        """Keep who is asking for the batch (the request's key), so its lines record their
        usage under that key in whichever process runs them."""
        caller = current_caller.get()
        if self.usage is not None and caller is not None:
            who = WorkCaller(caller.project_id, caller.key_id)
            await self.usage.remember_caller(LEASE, batch_id, who)

    def start(self, batch_id: str) -> None:
        """Run the batch in a task of its own (unless one already runs it)."""
        if self.closing or batch_id in self._tasks:
            return
        task = asyncio.create_task(self._run(batch_id), name=f"batch {batch_id}")
        self._tasks[batch_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(batch_id, None))

    async def cancel(self, batch_id: str) -> None:
        """Interrupt the batch's running lines; its task then writes the files of what ended.

        A batch that another replica runs is asked to stop there through its lease.
        """
        task = self._tasks.get(batch_id)
        if task is None:
            if not await self.leases.request_stop(LEASE, batch_id):
                self.start(batch_id)  # e.g. a task that ended at an error: finish the cancel
            return
        self._cancelled.add(batch_id)
        task.cancel()

    def _stop_requested(self, batch_id: str, lost: bool) -> None:
        task = self._tasks.get(batch_id)
        if task is None:
            return
        if not lost:
            self._cancelled.add(batch_id)  # a cancel: go on to write the files
        task.cancel()

    async def recover(self) -> int:
        """Start a task for every batch a previous process (or a replica that died) left
        unfinished; with replicas, only those no live replica holds."""
        ids = await self.repo.unfinished()
        if self.leases.shared:
            ids = [i for i in await self.leases.orphans(LEASE, ids) if i not in self._tasks]
        for batch_id in ids:
            self.start(batch_id)
        if ids:
            log.info("resuming %d unfinished batch(es)", len(ids))
        return len(ids)

    async def close(self) -> None:
        """Stop every task at shutdown; unfinished lines stay pending for the next start."""
        self.closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        await self._settle()

    async def _settle(self) -> None:
        """Wait for the line results being stored (they outlive a cancelled line)."""
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=10)

    async def _run(self, batch_id: str) -> None:
        if not await self.leases.claim(LEASE, batch_id):
            return  # another replica runs it
        try:
            await self._steps(batch_id, self.leases.fence(LEASE, batch_id))
        finally:
            await asyncio.shield(self.leases.release(LEASE, batch_id))

    async def _steps(self, batch_id: str, fence: Fence | None) -> None:
        lower_priority()
        status = "validating"
        while True:
            try:
                stored = await self.repo.get(None, batch_id)
                if stored is None:
                    return
                status = stored.status
                step = {
                    "validating": self._validate,
                    "in_progress": self._execute,
                    "finalizing": self._finish,
                    "cancelling": self._finish,
                }.get(status)
                if step is None:
                    return
                await step(stored, fence)
            except LeaseLost:
                log.warning("batch %s was taken over by another replica; stopping here", batch_id)
                return
            except asyncio.CancelledError:
                if batch_id not in self._cancelled or self.closing:
                    raise
                # A client's cancel: the row now says cancelling; go on to write the files.
                self._cancelled.discard(batch_id)
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                await self._settle()  # so the files hold every line counted as done
            except Exception as failure:
                error = {"code": "server_error", "message": "The batch failed on the server."}
                try:
                    await self.repo.transition(
                        batch_id, "failed", [status], _now(), fence=fence, errors=[error]
                    )
                except LeaseLost:
                    # Then it is the new holder's to end, and the error was most likely a
                    # write the server cut off (a transaction left open past its timeout).
                    log.warning(
                        "batch %s was taken over by another replica while a write of this "
                        "one was open; stopping here",
                        batch_id,
                        exc_info=failure,
                    )
                    return
                log.error("batch %s failed", batch_id, exc_info=failure)
                return

    async def _validate(self, stored: StoredBatch, fence: Fence | None) -> None:
        row = stored.row
        try:
            info = await self.files.get(stored.owner, row["input_file_id"])
            if info.bytes > MAX_BYTES:
                await self._reject(
                    stored, fence, "file_too_large", f"The input file is over {MAX_BYTES} bytes."
                )
                return
            _, chunks = await self.files.stream(stored.owner, row["input_file_id"])
        except NotFoundError:
            await self._reject(stored, fence, "invalid_file", "The input file no longer exists.")
            return
        check = await check_input(chunks, row["endpoint"])
        if check.errors:
            await self.repo.transition(
                stored.id, "failed", ["validating"], _now(), fence=fence, errors=check.errors
            )
            return
        await self.repo.start(stored.id, check.lines, check.model, _now(), fence)

    async def _reject(
        self, stored: StoredBatch, fence: Fence | None, code: str, message: str
    ) -> None:
        error = {"code": code, "message": message, "line": None, "param": "input_file_id"}
        await self.repo.transition(
            stored.id, "failed", ["validating"], _now(), fence=fence, errors=[error]
        )

    async def _execute(self, stored: StoredBatch, fence: Fence | None) -> None:
        lower_priority(rerunnable=stored.row["endpoint"] in RERUNNABLE)
        expires_at = int(stored.row["expires_at"])
        lines = self._pending(stored.id)
        writer = LineWriter(self.repo, stored.id, fence)
        who = WorkCaller(None, None)
        if self.usage is not None:
            who = await self.usage.caller_of(LEASE, stored.id)
        taking = asyncio.Lock()
        expired = False

        async def drain() -> None:
            nonlocal expired
            while not expired:
                async with taking:
                    item = await anext(lines, None)
                if item is None:
                    return
                if time.time() >= expires_at:
                    expired = True
                    return
                async with self._slots:
                    await self._run_line(stored, item, writer, who)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(drain())
        except* LeaseLost as lost:
            raise lost.exceptions[0] from None
        finally:
            await lines.aclose()
        if expired:
            await self.repo.expire_pending(stored.id, fence)
            await self._finish(stored, fence)  # status in_progress: ends as expired
        else:
            await self.repo.transition(
                stored.id, "finalizing", ["in_progress"], _now(), fence=fence
            )

    async def _pending(self, batch_id: str) -> AsyncGenerator[PendingLine, None]:
        after = 0
        while page := await self.repo.pending(batch_id, after=after, limit=_PAGE):
            for item in page:
                yield item
            after = page[-1].line

    async def _run_line(
        self, stored: StoredBatch, item: PendingLine, writer: LineWriter, who: WorkCaller
    ) -> None:
        while True:
            # The line's usage is collected here (no sink: nothing is written or charged as
            # it runs) and stored with its result, once, under the key that asked for the
            # batch; a run that gave way to a live request counts nothing.
            caller = Caller(
                owner=stored.owner,
                key_id=who.key_id,
                project_id=who.project_id,
                max_tokens=who.max_tokens,
            )
            token = current_caller.set(caller)
            try:
                status, body = await self.dispatch(
                    stored.owner, stored.row["endpoint"], item.request
                )
                break
            except PreemptedError:
                # Queued again behind live traffic; nothing of the first run was kept.
                self.lines_rerun += 1
            finally:
                current_caller.reset(token)
        usage = [UsageRow(stored.owner, who.project_id, who.key_id, e) for e in caller.used]
        result = {
            "id": new_id("batch_req", nbytes=16),
            "custom_id": item.custom_id,
            "response": {
                "status_code": status,
                "request_id": new_id("req", nbytes=16),
                "body": body,
            },
            "error": None,
        }
        # Shielded: once the answer exists, a cancel must not lose it half-written.
        write = asyncio.ensure_future(
            writer.write(LineResult(item.line, status >= 400, result, line_tokens(body), usage))
        )
        self._writes.add(write)
        write.add_done_callback(self._forget)
        if await asyncio.shield(write):
            if self.count_usage is not None:
                for entry in caller.used:
                    self.count_usage(entry)
            self.lines_done["failed" if status >= 400 else "completed"] += 1

    def _forget(self, write: asyncio.Future[bool]) -> None:
        self._writes.discard(write)
        if not write.cancelled():
            # Read here too: a line cancelled while its result was stored no longer awaits
            # the write, and a lost lease (the error it may end with) is the task's to handle.
            write.exception()

    async def _finish(self, stored: StoredBatch, fence: Fence | None) -> None:
        """Write the output and error files, then take the batch to its end state."""
        output_id = await self._write(stored, "output", self.repo.results(stored.id, failed=False))
        error_id = await self._write(stored, "error", self.repo.results(stored.id, failed=True))
        ended = await self.repo.transition(
            stored.id,
            _ENDS[stored.status],
            [stored.status],
            _now(),
            fence=fence,
            output_file_id=output_id,
            error_file_id=error_id,
        )
        if not ended:  # a cancel came while the files were written: the next step redoes them
            for file_id in (output_id, error_id):
                if file_id is not None:
                    await self.files.delete(stored.owner, file_id)

    async def _write(
        self, stored: StoredBatch, kind: str, rows: AsyncIterator[tuple[str, Any]]
    ) -> str | None:
        """The lines of ``rows`` as a ``batch_output`` file; None when there are none."""
        first = await anext(rows, None)
        if first is None:
            return None

        async def chunks() -> AsyncIterator[bytes]:
            buffer = bytearray(_output_line(*first))
            async for custom_id, result in rows:
                buffer += _output_line(custom_id, result)
                if len(buffer) >= _CHUNK:
                    yield bytes(buffer)
                    buffer.clear()
            yield bytes(buffer)

        created = await self.files.create(
            stored.owner,
            f"{stored.id}_{kind}.jsonl",
            "batch_output",
            chunks(),
            stored.row["output_expires_after"],
            max_bytes=_UNBOUNDED,
        )
        return created.id


def _output_line(custom_id: str, result: dict[str, Any] | None) -> bytes:
    if result is None:  # a line the batch expired before it ran
        result = {
            "id": new_id("batch_req", nbytes=16),
            "custom_id": custom_id,
            "response": None,
            "error": {
                "code": "batch_expired",
                "message": "This line was not run before the batch's completion window ended.",
            },
        }
    return json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def line_tokens(body: Any) -> LineTokens:
    """The tokens an answer's ``usage`` counts, whichever endpoint's shape it has (chat
    and completions say prompt/completion, Responses and images input/output)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return LineTokens()

    def number(*path: str) -> int:
        value: Any = usage
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, int) else 0

    return LineTokens(
        input_tokens=number("input_tokens") or number("prompt_tokens"),
        cached_tokens=number("input_tokens_details", "cached_tokens")
        or number("prompt_tokens_details", "cached_tokens"),
        output_tokens=number("output_tokens") or number("completion_tokens"),
        reasoning_tokens=number("output_tokens_details", "reasoning_tokens")
        or number("completion_tokens_details", "reasoning_tokens"),
    )


def _now() -> int:
    return int(time.time())
