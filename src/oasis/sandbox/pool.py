"""The server's sandboxes: whether they can run here, and one live kernel per container.

:meth:`Sandboxes.probe` (at start-up) starts one throw-away kernel and runs a line of
code in it; when that fails (no ``bwrap``, no user namespaces) the reason is logged and
kept, and the ``code_interpreter`` tool is refused with it. Code never runs unsandboxed.
Kernels run under the seccomp filter of :mod:`.seccomp`; on an architecture it does not
cover, the sandbox is refused too unless ``require_seccomp`` is off.

Kernels are started on a container's first call and kept while it is used; at most
``max_kernels`` live at once (the least recently used one is stopped to make room; its
container keeps its files) and one idle for ``idle_seconds`` is stopped by
:meth:`Sandboxes.reap`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from oasis.sandbox import seccomp
from oasis.sandbox.kernel import Execution, Kernel, KernelError
from oasis.sandbox.launcher import Limits, SandboxUnavailable, find_bwrap, font_cache_dir

log = logging.getLogger(__name__)


class Sandboxes:
    """Live kernels by container id."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        max_kernels: int = 8,
        idle_seconds: float = 600,
        bwrap: str | None = None,
        require_seccomp: bool = True,
    ) -> None:
        self.limits = limits or Limits()
        self.require_seccomp = require_seccomp
        self.seccomp: bytes | None = None  # the kernels' filter, once probed
        self.configured_bwrap = bwrap
        self.max_kernels = max_kernels
        self.idle_seconds = idle_seconds
        self.unavailable: str | None = "the sandbox has not been checked yet"
        self._bwrap: str | None = None
        self._kernels: dict[str, tuple[Kernel, float]] = {}
        self._lock = asyncio.Lock()
        self.fonts: Path | None = None  # matplotlib's font list, once built
        self._fonts_task: asyncio.Task[None] | None = None

    async def probe(self) -> bool:
        """Check that a sandbox can be made here; log and keep the reason when not."""
        try:
            self._bwrap = find_bwrap(self.configured_bwrap)
            self.seccomp = self._filter()
            with tempfile.TemporaryDirectory(prefix="oasis-probe-") as work:
                kernel = Kernel(self._bwrap, Path(work), self.limits, seccomp=self.seccomp)
                try:
                    result = await kernel.execute("print(6 * 7)")
                finally:
                    await kernel.stop()
            if result.stdout.strip() != "42":
                raise SandboxUnavailable(f"a test run failed: {result.logs.strip()}")
        except (SandboxUnavailable, KernelError, OSError) as exc:
            self.unavailable = str(exc)
            log.warning("code_interpreter is disabled: the sandbox cannot run here: %s", exc)
            return False
        self.unavailable = None
        log.info(
            "code_interpreter: sandbox ready (bubblewrap at %s, %s)",
            self._bwrap,
            "with seccomp" if self.seccomp is not None else "without seccomp",
        )
        self._fonts_task = asyncio.create_task(self._build_font_cache())
        return True

    def _filter(self) -> bytes | None:
        """The seccomp filter for this machine; without one, the sandbox is refused when
        ``require_seccomp`` is set, else it runs on namespaces alone (logged)."""
        try:
            return seccomp.program()
        except seccomp.SeccompUnsupported as exc:
            if self.require_seccomp:
                raise SandboxUnavailable(
                    f"{exc}; set [code_interpreter] require_seccomp = false to run kernels "
                    "with namespaces and limits only"
                ) from exc
            log.warning("code_interpreter: %s: kernels run without a seccomp filter", exc)
            return None

    async def warmed(self) -> None:
        """Wait for the background work of :meth:`probe` (the font cache) to end."""
        if self._fonts_task is not None:
            await self._fonts_task

    async def _build_font_cache(self) -> None:
        """Build matplotlib's font list once per machine, in the background (on the host:
        only matplotlib's own code runs), for every later kernel to start from."""
        target = font_cache_dir()
        if any(target.glob("fontlist-*.json")):
            self.fonts = target
            return
        try:
            target.mkdir(parents=True, exist_ok=True)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-c",
                "import matplotlib; matplotlib.use('Agg'); import matplotlib.font_manager",
                env={"MPLCONFIGDIR": str(target), "HOME": str(target), "PATH": "/usr/bin:/bin"},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await process.wait()
        except OSError as exc:
            log.debug("no matplotlib font cache for kernels: %s", exc)
            return
        if any(target.glob("fontlist-*.json")):
            self.fonts = target

    async def execute(
        self, container_id: str, workdir: Path, code: str, *, memory_bytes: int
    ) -> Execution:
        """Run ``code`` in the container's kernel (started when it has none)."""
        if self.unavailable is not None or self._bwrap is None:
            raise SandboxUnavailable(self.unavailable or "no sandbox")
        async with self._lock:
            entry = self._kernels.get(container_id)
            if entry is None:
                await self._make_room()
                limits = replace(self.limits, memory_bytes=memory_bytes)
                kernel = Kernel(self._bwrap, workdir, limits, self.fonts, self.seccomp)
            else:
                kernel = entry[0]
            self._kernels[container_id] = (kernel, time.monotonic())
        result = await kernel.execute(code)
        self._kernels[container_id] = (kernel, time.monotonic())
        return result

    async def discard(self, container_id: str) -> None:
        """Stop the container's kernel, if it has one (the container is gone)."""
        entry = self._kernels.pop(container_id, None)
        if entry is not None:
            await entry[0].stop()

    async def reap(self) -> int:
        """Stop kernels idle longer than ``idle_seconds``; how many were stopped."""
        cutoff = time.monotonic() - self.idle_seconds
        idle = [cid for cid, (_, used) in self._kernels.items() if used < cutoff]
        for cid in idle:
            await self.discard(cid)
        return len(idle)

    async def close(self) -> None:
        """Stop every kernel (server shutdown)."""
        if self._fonts_task is not None:
            self._fonts_task.cancel()
        for cid in list(self._kernels):
            await self.discard(cid)

    async def _make_room(self) -> None:
        while len(self._kernels) >= self.max_kernels:
            oldest = min(self._kernels, key=lambda cid: self._kernels[cid][1])
            await self.discard(oldest)
