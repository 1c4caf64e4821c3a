"""A container's files, handled as untrusted ground: its directory on the host, and the
sandbox's own ``/mnt/data`` (reached through a descriptor, see :mod:`.mirror`).

The sandboxed code owns the sandbox's copy, and what it writes there reaches the host's:
it may put symbolic links there (to ``/etc/passwd`` on the host, say), swap a file for a
link between our look and our read, or make deep trees. So the server never follows a
link in either: every path is walked one component at a time from a descriptor of the
directory (``O_NOFOLLOW``), and only regular files count. A root is a path or an open
directory descriptor. Paths are the ones the sandbox sees: ``/mnt/data/<relative path>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
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


Root = Path | int  # a directory, or an open descriptor of one


def scan(root: Path) -> dict[str, Seen]:
    """The regular files below ``root`` by sandbox path (links are not followed)."""
    return scan_all(root)[0]


def scan_all(root: Root) -> tuple[dict[str, Seen], bool]:
    """The regular files below ``root`` by sandbox path, and whether that is all of them
    (a scan stops after ``_MAX_SCAN`` files)."""
    found: dict[str, Seen] = {}
    top: str | Path = "." if isinstance(root, int) else root
    try:
        walker = os.fwalk(top, follow_symlinks=False, dir_fd=_fd_or_none(root))
        for dirpath, _dirs, names, dirfd in walker:
            base = os.path.relpath(dirpath, top)
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
                    return found, False
    except OSError:
        return found, False
    return found, True


def _fd_or_none(root: Root) -> int | None:
    return root if isinstance(root, int) else None


def _open_root(root: Root) -> int:
    """A new descriptor of ``root`` (the caller closes it)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    if isinstance(root, int):
        return os.open(".", flags, dir_fd=root)
    return os.open(root, flags | os.O_NOFOLLOW)


def _parent(root: Root, parts: list[str], *, make: bool = False) -> int:
    """A descriptor of the directory that holds ``parts[-1]`` below ``root``, walked one
    component at a time without following links (made on the way when ``make``); the
    caller closes it. ``OSError`` when something is in the way."""
    fd = _open_root(root)
    try:
        for part in parts[:-1]:
            if make:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(root: Root, path: str) -> tuple[BinaryIO, int] | None:
    """The regular file at sandbox ``path``, open for reading, and its size; None when
    there is none (or a link or anything else is in the way)."""
    relative = relative_of(path)
    if relative is None:
        return None
    parts = relative.split("/")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = _parent(root, parts)
    except OSError:
        return None
    try:
        handle = os.open(parts[-1], flags, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode):
        os.close(handle)
        return None
    return os.fdopen(handle, "rb"), info.st_size


def remove_file(root: Root, path: str) -> None:
    """Remove the file at sandbox ``path`` (a link in the way stops it; nothing raises)."""
    relative = relative_of(path)
    if relative is None:
        return
    parts = relative.split("/")
    try:
        fd = _parent(root, parts)
    except OSError:
        return
    try:
        os.unlink(parts[-1], dir_fd=fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def copy_file(source: Root, target: Root, path: str, *, replace: bool) -> Seen | None:
    """Copy the regular file at sandbox ``path`` from one root to the other, making its
    directories; the copy as it is now, or None when there was nothing to copy (or a link
    was in the way). ``replace``: write a new file and rename it over the old one, so a
    reader never sees half a file; else the old one is overwritten in place (no second
    copy counts against a size-capped target). ``OSError`` from writing (no space) is
    raised, a partial copy removed."""
    opened = open_file(source, path)
    relative = relative_of(path)
    if opened is None or relative is None:
        return None
    handle, size = opened
    parts = relative.split("/")
    with handle:
        try:
            fd = _parent(target, parts, make=True)
        except OSError:
            return None
        try:
            name = f".{parts[-1]}.{secrets.token_hex(4)}.part" if replace else parts[-1]
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                out = os.open(name, flags, 0o644, dir_fd=fd)
            except OSError:
                return None  # a link or a directory is in the way
            try:
                with os.fdopen(out, "wb") as writer:
                    _copy(handle, writer, size)
                    writer.flush()
                    info = os.fstat(writer.fileno())
                if replace:
                    os.replace(name, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)
                raise
        finally:
            os.close(fd)
    return Seen(path, info.st_size, info.st_mtime_ns)


def _copy(source: BinaryIO, target: BinaryIO, size: int) -> None:
    """At most ``size`` bytes (the file may still grow while it is read)."""
    left = size
    while left > 0 and (chunk := source.read(min(_CHUNK, left))):
        target.write(chunk)
        left -= len(chunk)


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
