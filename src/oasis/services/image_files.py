"""Pictures served by URL (``response_format=url``): files under the data dir that expire.

A URL's file name is 32 random bytes, so the URL itself is the credential, as OpenAI's
signed URLs are: it can be put in an ``<img src>`` without an API key. Files older than
``ttl`` seconds are refused and swept away.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from oasis.errors import NotFoundError

_NAME = re.compile(r"^img_[A-Za-z0-9_-]{43}\.(png|jpeg|webp)$")


class ImageFileStore:
    """Writes pictures once and serves them by name until they expire."""

    def __init__(self, directory: Path, ttl: float = 3600.0) -> None:
        self.directory = directory
        self.ttl = ttl

    def save(self, data: bytes, fmt: str) -> str:
        """Store ``data`` and return its file name (the last part of its URL)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sweep()
        name = f"img_{secrets.token_urlsafe(32)}.{fmt}"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.directory / name)
        return name

    def path(self, name: str) -> Path:
        """The file for ``name``; 404 when unknown or expired."""
        path = self.directory / name
        if not _NAME.match(name) or not path.is_file() or self._expired(path):
            raise NotFoundError(f"The image `{name}` does not exist or has expired.")
        return path

    def _expired(self, path: Path) -> bool:
        try:
            return time.time() - path.stat().st_mtime > self.ttl
        except FileNotFoundError:
            return True

    def sweep(self) -> None:
        """Delete expired files (cheap: one directory listing)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.is_file() and self._expired(path):
                path.unlink(missing_ok=True)
