"""Large payloads (uploaded files, pictures served by URL) as files under the data dir.

A blob is an opaque byte string under an id. Ids are single file names drawn from a small
alphabet that cannot start with a dot, so no id can name a parent directory, a path
elsewhere or one of the store's own temporary files. A write goes to a temporary file in
the same directory, is flushed to disk, and is renamed into place: a reader sees the whole
blob or none of it, and a crash leaves no half-written blob behind an acknowledged id.
Each kind of blob lives in its own section (a subdirectory), so listing one kind never
walks another's files.

Methods block on file I/O; async callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
_CHUNK = 1 << 20


class BlobNotFoundError(LookupError):
    """No blob has this id (or the id is one no blob can have)."""


def valid_id(blob_id: str) -> bool:
    """Whether ``blob_id`` can name a blob (it stays inside the store's directory)."""
    return _ID.match(blob_id) is not None


class BlobStore:
    """Blobs as files in one directory, written atomically, read whole or as a stream."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def section(self, name: str) -> BlobStore:
        """The store for one kind of blob, in a subdirectory of this one."""
        if not valid_id(name):
            raise ValueError(f"invalid blob section name: {name!r}")
        return BlobStore(self.root / name)

    def put(self, data: bytes | BinaryIO, blob_id: str | None = None) -> str:
        """Store ``data`` (bytes, or a binary file read to its end) and return its id.

        Without ``blob_id`` a fresh unguessable id is made. An existing blob with the id is
        replaced whole.
        """
        with self.writer(blob_id) as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                while chunk := data.read(_CHUNK):
                    out.write(chunk)
            return out.commit()

    def writer(self, blob_id: str | None = None) -> BlobWriter:
        """A blob written piece by piece, which appears only on :meth:`BlobWriter.commit`.

        Used as a context manager: leaving it without a commit (an error, a client that
        went away) removes the partial file.
        """
        blob_id = blob_id if blob_id is not None else secrets.token_urlsafe(32)
        if not valid_id(blob_id):
            raise ValueError(f"invalid blob id: {blob_id!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self, blob_id)

    def path(self, blob_id: str) -> Path:
        """The file holding a blob, for a server to send as it is."""
        path = self.root / blob_id
        if not valid_id(blob_id) or not path.is_file():
            raise BlobNotFoundError(blob_id)
        return path

    def read(self, blob_id: str) -> bytes:
        """A blob's bytes, whole."""
        with self.open(blob_id) as stream:
            return stream.read()

    def open(self, blob_id: str) -> BinaryIO:
        """A blob as a binary stream (the caller closes it)."""
        try:
            return self.path(blob_id).open("rb")
        except FileNotFoundError:  # deleted between the check and the open
            raise BlobNotFoundError(blob_id) from None

    def modified(self, blob_id: str) -> float:
        """When a blob was written (seconds since the epoch)."""
        try:
            return self.path(blob_id).stat().st_mtime
        except FileNotFoundError:
            raise BlobNotFoundError(blob_id) from None

    def delete(self, blob_id: str) -> bool:
        """Remove a blob; False if there was none."""
        if not valid_id(blob_id):
            return False
        try:
            (self.root / blob_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def ids(self) -> Iterator[str]:
        """The ids of the stored blobs (one directory listing; temporary files skipped)."""
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if valid_id(path.name) and path.is_file():
                yield path.name

    def discard_partial(self, older_than: float) -> int:
        """Remove temporary files that writes cut short by a crash left behind.

        Only those older than ``older_than`` seconds go, so a write still running in
        another thread or process keeps its file. Returns how many were removed.
        """
        if not self.root.is_dir():
            return 0
        removed = 0
        now = time.time()
        for path in self.root.iterdir():
            if not _TEMPORARY.match(path.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > older_than:
                    path.unlink()
                    removed += 1
        return removed

    def sync_directory(self) -> None:
        """Make renames in this store's directory durable (a commit does this itself)."""
        # The rename is durable only once the directory entry is on disk too.
        with contextlib.suppress(OSError):  # not every platform can open a directory
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class BlobWriter:
    """One blob being written: pieces go to a temporary file, renamed into place on commit."""

    def __init__(self, store: BlobStore, blob_id: str) -> None:
        self.store = store
        self.id = blob_id
        self.size = 0
        self._tmp = store.root / f".{blob_id}.{secrets.token_hex(4)}.tmp"  # matches _TEMPORARY
        self._out: BinaryIO | None = self._tmp.open("wb")

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` to the blob."""
        if self._out is None:
            raise ValueError("this blob is already committed or abandoned")
        self._out.write(chunk)
        self.size += len(chunk)

    def commit(self) -> str:
        """Flush to disk and put the blob in place under its id (replacing one there)."""
        if self._out is None:
            raise ValueError("this blob is already committed or abandoned")
        out, self._out = self._out, None
        try:
            out.flush()
            os.fsync(out.fileno())
            out.close()
            os.replace(self._tmp, self.store.root / self.id)
        except BaseException:
            out.close()
            self._tmp.unlink(missing_ok=True)
            raise
        self.store.sync_directory()
        return self.id

    def abort(self) -> None:
        """Drop what was written; nothing appears under the id."""
        if self._out is not None:
            self._out.close()
            self._out = None
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.abort()
