"""A container's files while its kernel lives: a size-capped ``/mnt/data`` in the sandbox,
mirrored to the container's directory on the host around each call.

The sandbox's ``/mnt/data`` is a tmpfs of ``disk_bytes`` (bubblewrap's ``--size``), so
the kernel itself refuses a write past the container's disk limit (``ENOSPC``), however
the code writes: many files, a growing file, a process left running. The host's directory
is never mounted in the sandbox. The server reaches the tmpfs through a descriptor opened
once, before any code runs (``/proc/<pid>/root/mnt/data`` of the sandbox's first process),
which also keeps it readable after the kernel is killed, until it is closed.

Before a call, :meth:`Mirror.pull` brings in what changed on the host since the last sync
(files uploaded or deleted through the API); after it, :meth:`Mirror.push` takes out what
the code changed (written, replaced, deleted). Each side is compared with its own state at
the last sync, so neither overwrites the other's news. Paths are walked without following
links on both sides (:mod:`.workdir`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from pathlib import Path

from oasis.sandbox import workdir as dirs
from oasis.sandbox.launcher import WORKDIR

log = logging.getLogger(__name__)


class Mirror:
    """The two copies of one container's files and what each looked like at the last sync."""

    def __init__(self, host: Path, fd: int) -> None:
        self.host = host
        self.fd = fd  # the sandbox's /mnt/data; -1 once closed
        # A kernel may be stopped (closing this) while a call's sync runs in a thread.
        self._lock = threading.Lock()
        self._host_seen: dict[str, dirs.Seen] = {}
        self._box_seen: dict[str, dirs.Seen] = {}

    @classmethod
    def attach(cls, host: Path, pid: int) -> Mirror:
        """The mirror of the sandbox whose process ``pid`` (any process inside it) sees
        the tmpfs at ``/mnt/data``."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        return cls(host, os.open(f"/proc/{pid}/root{WORKDIR}", flags))

    def pull(self) -> list[str]:
        """Bring the host's changes in; the paths that did not fit under the disk limit."""
        with self._lock:
            return self._pull() if self.fd >= 0 else []

    def push(self) -> None:
        """Take the code's changes out to the host's directory."""
        with self._lock:
            if self.fd >= 0:
                self._push()

    def close(self) -> None:
        """Let the tmpfs go (it ends with the sandbox and this descriptor)."""
        with self._lock:
            if self.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                self.fd = -1

    def _pull(self) -> list[str]:
        host, complete = dirs.scan_all(self.host)
        for path in [p for p in self._host_seen if complete and p not in host]:
            dirs.remove_file(self.fd, path)  # deleted through the API
            self._forget(path)
        left_out: list[str] = []
        for path, seen in sorted(host.items()):  # the same files fit on every call
            if self._host_seen.get(path) == seen:
                continue
            try:
                copied = dirs.copy_file(self.host, self.fd, path, replace=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EFBIG):
                    raise
                dirs.remove_file(self.fd, path)
                self._forget(path)  # tried again on the next call
                left_out.append(path)
                continue
            if copied is not None:
                self._host_seen[path] = seen
                self._box_seen[path] = copied
        return left_out

    def _push(self) -> None:
        box, complete = dirs.scan_all(self.fd)
        for path in [p for p in self._box_seen if complete and p not in box]:
            dirs.remove_file(self.host, path)  # the code deleted it
            self._forget(path)
        for path, seen in box.items():
            if self._box_seen.get(path) == seen:
                continue
            try:
                copied = dirs.copy_file(self.fd, self.host, path, replace=True)
            except OSError as exc:  # the host's disk: tried again after the next call
                log.warning("container file %s not saved to %s: %s", path, self.host, exc)
                continue
            if copied is not None:
                self._box_seen[path] = seen
                self._host_seen[path] = copied

    def _forget(self, path: str) -> None:
        self._host_seen.pop(path, None)
        self._box_seen.pop(path, None)
