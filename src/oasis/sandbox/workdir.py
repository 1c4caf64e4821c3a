"""A container's working directory on the host, handled as untrusted ground.

The sandboxed code owns this directory: it may put symbolic links there (to ``/etc/passwd``
on the host, say), swap a file for a link between our look and our read, or make deep
trees. So the server never follows a link in it: every path is walked one component at a
time from a descriptor of the directory (``O_NOFOLLOW``), and only regular files count.
Paths are the ones the sandbox sees: ``/mnt/data/<relative path>``.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from oasis.sandbox.launcher import WORKDIR

_CHUNK = 1 << 20
_MAX_SCAN = 2000  # files looked at per scan: a tree of millions must not stall us


@dataclass(frozen=True)
class Seen:
    """A regular file found in a working directory."""

    path: str  # as the sandbox sees it
    size: int
    mtime_ns: int


def inside_path(relative: str) -> str:
    """The sandbox path of a file ``relative`` to the working directory."""
    return f"{WORKDIR}/{relative}"


def relative_of(path: str) -> str | None:
    """``path`` (a sandbox path) relative to the working directory; None when it is not
    a plain path below it."""
    prefix = WORKDIR + "/"
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix) :].split("/")
    if not parts or any(p in {"", ".", ".."} for p in parts):
        return None
    return "/".join(parts)


def safe_name(filename: str) -> str:
    """A file name for an upload: its last component, never empty, ``.`` or ``..``."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip().replace("\x00", "")
    return name if name not in {"", ".", ".."} else "upload"


def scan(root: Path) -> dict[str, Seen]:
    """The regular files below ``root`` by sandbox path (links are not followed)."""
    found: dict[str, Seen] = {}
    try:
        walker = os.fwalk(root, follow_symlinks=False)
        for dirpath, _dirs, names, dirfd in walker:
            base = os.path.relpath(dirpath, root)
            for name in names:
                try:
                    info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                relative = name if base == "." else f"{base}/{name}"
                found[inside_path(relative)] = Seen(
                    inside_path(relative), info.st_size, info.st_mtime_ns
                )
                if len(found) >= _MAX_SCAN:
                    return found
    except OSError:
        pass
    return found


def open_file(root: Path, path: str) -> tuple[BinaryIO, int] | None:
    """The regular file at sandbox ``path``, open for reading, and its size; None when
    there is none (or a link or anything else is in the way)."""
    relative = relative_of(path)
    if relative is None:
        return None
    parts = relative.split("/")
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(root, flags | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            child = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        handle = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        os.close(fd)
        return None
    os.close(fd)
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode):
        os.close(handle)
        return None
    return os.fdopen(handle, "rb"), info.st_size


def remove_file(root: Path, path: str) -> None:
    """Remove the file at sandbox ``path`` (a link in the way stops it; nothing raises)."""
    relative = relative_of(path)
    if relative is None:
        return
    parts = relative.split("/")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY
    try:
        fd = os.open(root, flags)
    except OSError:
        return
    try:
        for part in parts[:-1]:
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
        os.unlink(parts[-1], dir_fd=fd)
    except OSError:
        pass
    finally:
        os.close(fd)


async def read_chunks(handle: BinaryIO, size: int) -> AsyncIterator[bytes]:
    """At most ``size`` bytes of ``handle``, in chunks; the handle is closed at the end."""
    try:
        left = size
        while left > 0 and (chunk := await asyncio.to_thread(handle.read, min(_CHUNK, left))):
            left -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


def unique_name(root: Path, name: str) -> str:
    """``name``, or ``stem-2.ext``… when a file of that name is already in ``root``."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    candidate, number = name, 1
    while os.path.lexists(root / candidate):
        number += 1
        candidate = f"{stem}-{number}.{ext}" if ext else f"{stem}-{number}"
    return candidate
