"""A ``pids`` cgroup per kernel, where the host lets us make one.

``RLIMIT_NPROC`` is not enforced for processes whose real user is root, which is what a
sandbox started by a root server runs as outside its namespace; a fork bomb there would
take every process id of the host. A cgroup's ``pids.max`` holds for everyone. Without a
writable cgroup hierarchy (an unprivileged server), ``RLIMIT_NPROC`` does the job.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


def _usable(root: Path) -> bool:
    if not (root / "cgroup.procs").exists() or not os.access(root, os.W_OK):
        return False
    if (root / "cgroup.controllers").exists():  # v2: pids must be enabled for children
        try:
            return "pids" in (root / "cgroup.subtree_control").read_text().split()
        except OSError:
            return False
    return True


class PidsGroup:
    """One kernel's cgroup; every method is a no-op when none could be made."""

    def __init__(self, name: str, limit: int) -> None:
        self.path: Path | None = None
        for root in _ROOTS:
            if not _usable(root):
                continue
            path = root / f"oasis-{name}"
            try:
                path.mkdir(exist_ok=True)
                (path / "pids.max").write_text(str(limit))
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            self.path = path
            break

    def adopt(self, root_pid: int) -> None:
        """Move ``root_pid`` and every process below it into the group."""
        if self.path is None:
            return
        for pid in [root_pid, *descendants(root_pid)]:
            with contextlib.suppress(OSError):
                (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """Remove the group (once its processes are gone)."""
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.rmdir()
            self.path = None


def descendants(pid: int) -> list[int]:
    """The processes below ``pid``, its children first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in children:
                found.append(int(child))
                todo.append(int(child))
    return found
