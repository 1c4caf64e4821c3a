"""Pictures served by URL (``response_format=url``): blobs that expire.

A URL's file name is 32 random bytes, so the URL itself is the credential, as OpenAI's
signed URLs are: it can be put in an ``<img src>`` without an API key. Expiry belongs to
image URLs, not to blobs: pictures older than ``ttl`` seconds are refused and swept away.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from oasis.errors import NotFoundError
from oasis.store.blobs import BlobNotFoundError, BlobStore

_NAME = re.compile(r"^img_[A-Za-z0-9_-]{43}\.(png|jpeg|webp)$")


def adopt_legacy_directory(legacy: Path, blobs: BlobStore) -> None:
    """Move the pictures of a server from before the blob store into ``blobs``.

    They lived in ``<data-dir>/images``; their URLs keep working until they expire, and
    the usual sweep then removes them. Done only when ``blobs`` has no directory yet.
    """
    if legacy.is_dir() and not blobs.root.exists():
        blobs.root.parent.mkdir(parents=True, exist_ok=True)
        os.replace(legacy, blobs.root)


class ImageFileStore:
    """Writes pictures once, as blobs, and serves them by name until they expire."""

    def __init__(self, blobs: BlobStore, ttl: float = 3600.0) -> None:
        self.blobs = blobs
        self.ttl = ttl

    def save(self, data: bytes, fmt: str) -> str:
        """Store ``data`` and return its file name (the last part of its URL)."""
        self.sweep()
        return self.blobs.put(data, f"img_{secrets.token_urlsafe(32)}.{fmt}")

    def path(self, name: str) -> Path:
        """The file for ``name``; 404 when unknown or expired."""
        try:
            if _NAME.match(name) and not self._expired(name):
                return self.blobs.path(name)
        except BlobNotFoundError:
            pass
        raise NotFoundError(f"The image `{name}` does not exist or has expired.")

    def _expired(self, name: str) -> bool:
        return time.time() - self.blobs.modified(name) > self.ttl

    def sweep(self) -> None:
        """Delete expired pictures and abandoned partial writes (a directory listing)."""
        self.blobs.discard_partial(self.ttl)
        for name in list(self.blobs.ids()):
            try:
                if self._expired(name):
                    self.blobs.delete(name)
            except BlobNotFoundError:
                continue  # swept by a concurrent save
