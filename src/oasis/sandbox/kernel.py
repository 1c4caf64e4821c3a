"""One sandboxed Python kernel, seen from the server: start it, run code, stop it.

A call that runs past its wall time, or a kernel that dies (CPU limit, memory, a crash,
``os._exit``), ends the kernel: its whole process tree is killed, the call reports what
happened, and the next call starts a fresh kernel (its variables are gone, its files
stay). A cancelled call (the client went away) kills it the same way, so nothing keeps
running for nobody.

The container's files are synced around each call between its directory on the host and
the sandbox's size-capped ``/mnt/data`` (:mod:`.mirror`): in before the code runs, out
after it answers, and out once more whenever the kernel is stopped (killed included).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from oasis.sandbox.cgroup import PidsGroup, descendants
from oasis.sandbox.launcher import WORKDIR, Limits, command
from oasis.sandbox.mirror import Mirror

log = logging.getLogger(__name__)

_START_SECONDS = 60.0  # a cold start imports nothing heavy, but the host may be busy


@dataclass(frozen=True)
class Execution:
    """The outcome of one call."""

    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # a traceback, or why the kernel stopped
    truncated: bool = False
    images: list[str] = field(default_factory=list)  # paths inside the sandbox
    restarted: bool = False  # the kernel ended with this call; its state is gone

    @property
    def logs(self) -> str:
        """What the code printed, then its error, as one text."""
        parts = [p for p in (self.stdout, self.stderr, self.error) if p]
        text = "".join(p if p.endswith("\n") else p + "\n" for p in parts)
        if self.truncated:
            text += "[output truncated]\n"
        return text


class KernelError(RuntimeError):
    """The kernel could not be started."""


class Kernel:
    """A stateful Python kernel in its own sandbox, for one container's ``workdir``."""

    def __init__(
        self,
        bwrap: str,
        workdir: Path,
        limits: Limits,
        fonts: Path | None = None,
        seccomp: bytes | None = None,
    ) -> None:
        self.bwrap = bwrap
        self.fonts = fonts
        self.seccomp = seccomp  # the compiled filter; None: namespaces only
        self.workdir = workdir
        self.limits = limits
        self._process: asyncio.subprocess.Process | None = None
        self._group: PidsGroup | None = None
        self._drain: asyncio.Task[None] | None = None
        self._mirror: Mirror | None = None
        self._lock = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the kernel and wait until it is ready for code."""
        filter_fd = _pipe_of(self.seccomp) if self.seccomp is not None else None
        argv = command(self.bwrap, self.workdir, self.limits, self.fonts, filter_fd)
        self._group = PidsGroup(secrets.token_hex(6), self.limits.processes)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                pass_fds=() if filter_fd is None else (filter_fd,),
                # Three capped texts, each char at most 6 bytes of JSON, and some room besides.
                limit=18 * self.limits.output_chars + (1 << 16),
            )
        finally:
            if filter_fd is not None:
                os.close(filter_fd)
        self._drain = asyncio.create_task(self._drop_stderr(self._process))
        try:
            line = await asyncio.wait_for(self._readline(), _START_SECONDS)
        except (TimeoutError, ValueError, asyncio.LimitOverrunError) as exc:
            await self.stop()
            raise KernelError(f"the sandbox did not start ({exc!r})") from exc
        if not line:
            await self.stop()
            raise KernelError("the sandbox did not start (it exited at once)")
        # Before any code runs: from here on every process it makes counts in the group,
        # and the server holds the sandbox's /mnt/data (the first process inside sees it).
        self._group.adopt(self._process.pid)
        try:
            inside = descendants(self._process.pid)[0]
            self._mirror = await asyncio.to_thread(Mirror.attach, self.workdir, inside)
        except (IndexError, OSError) as exc:
            await self.stop()
            raise KernelError(f"the sandbox's files cannot be reached ({exc!r})") from exc

    async def execute(self, code: str) -> Execution:
        """Run ``code`` in the kernel (starting it first if needed)."""
        async with self._lock:
            if not self.alive:
                await self.start()
            assert self._mirror is not None
            left_out = await asyncio.to_thread(self._mirror.pull)
            result = await self._run(code)
            if self._mirror is not None:  # still running: else stop() took the files out
                await asyncio.to_thread(self._mirror.push)
            if left_out:
                note = (
                    f"DiskFull: not in {WORKDIR}, over the container's disk limit "
                    f"({self.limits.disk_bytes} bytes): {', '.join(left_out)}\n"
                )
                result = replace(result, stderr=note + result.stderr)
            return result

    async def _run(self, code: str) -> Execution:
        """One request to the running kernel and its reply (or why there was none)."""
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"code": code}).encode() + b"\n")
            await self._process.stdin.drain()
            line = await asyncio.wait_for(self._readline(), self.limits.wall_seconds)
        except TimeoutError:
            await self.stop()
            seconds = self.limits.wall_seconds
            return Execution(
                error=f"TimeoutError: the code ran past the time limit ({seconds:g} s); "
                "the kernel was stopped and its variables are lost.\n",
                restarted=True,
            )
        except (ValueError, asyncio.LimitOverrunError, ConnectionError):
            await self.stop()
            return Execution(
                error="OutputError: the code wrote more output than the kernel allows; "
                "the kernel was stopped.\n",
                restarted=True,
            )
        except BaseException:
            await self.stop()  # cancelled: nothing may keep running for nobody
            raise
        if not line:
            code_ = await self.stop()
            return Execution(error=_death(code_), restarted=True)
        reply = json.loads(line)
        return Execution(
            stdout=str(reply.get("stdout") or ""),
            stderr=str(reply.get("stderr") or ""),
            error=reply.get("error"),
            truncated=bool(reply.get("truncated")),
            images=[str(p) for p in reply.get("images") or []],
        )

    async def stop(self) -> int | None:
        """Kill the kernel and its whole process tree, and take the files it left out to
        the host; its exit status."""
        process, self._process = self._process, None
        mirror, self._mirror = self._mirror, None
        status: int | None = None
        if process is not None:
            if process.returncode is None:
                # The outer bwrap dies; the inner one (the PID namespace's init) gets
                # SIGKILL through --die-with-parent, which takes every process inside.
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            with contextlib.suppress(Exception):
                status = await asyncio.wait_for(process.wait(), 10)
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(BaseException):
                await self._drain
            self._drain = None
        if self._group is not None:
            for _ in range(150):  # the namespace's processes are reaped a moment later
                self._group.remove()
                if self._group.path is None:
                    break
                await asyncio.sleep(0.02)
            self._group = None
        if mirror is not None:
            # In the thread, so that the descriptor is closed after the copy even when
            # this task is cancelled while it waits.
            await asyncio.to_thread(_push_and_close, mirror)
        return status

    async def _readline(self) -> bytes:
        assert self._process is not None and self._process.stdout is not None
        return await self._process.stdout.readline()

    @staticmethod
    async def _drop_stderr(process: asyncio.subprocess.Process) -> None:
        # Read and discard what the kernel writes outside the protocol, so that the pipe
        # never fills and blocks it; the first bytes are logged for diagnosis.
        assert process.stderr is not None
        head = b""
        while chunk := await process.stderr.read(1 << 16):
            if len(head) < 2000:
                head += chunk
        if process.returncode not in (None, 0, -9) and head:
            log.debug("sandbox kernel stderr: %s", head[:2000].decode(errors="replace"))


def _push_and_close(mirror: Mirror) -> None:
    try:
        mirror.push()
    except OSError as exc:
        log.warning("the files of a stopped kernel were not all saved: %s", exc)
    finally:
        mirror.close()


def _pipe_of(data: bytes) -> int:
    """A descriptor to read ``data`` from (bwrap reads the filter to its end)."""
    read, write = os.pipe()
    try:
        os.write(write, data)  # a filter is a few hundred bytes: far below a pipe's buffer
    finally:
        os.close(write)
    return read


def _death(status: int | None) -> str:
    """Why a kernel ended without answering, from its exit status."""
    reasons = {
        -9: "it was killed (out of memory or a limit)",
        -24: "it ran past the CPU time limit",
        -25: "it wrote a file past the size limit",
        137: "it was killed (out of memory or a limit)",
        152: "it ran past the CPU time limit",
    }
    why = reasons.get(status or 0, f"it exited (status {status})")
    return f"KernelDied: the kernel stopped: {why}; its variables are lost.\n"
