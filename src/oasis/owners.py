"""Owner ids: whom a stored object belongs to, derived from the API key that stored it.

An owner id is an HMAC of the key under a server secret, so a copy of the database alone
does not let anyone test guessed keys against it, as a bare hash of the key would. The
secret is the ``owner_secret`` setting (``OASIS_OWNER_SECRET``: replicas sharing one
PostgreSQL database must share it) or else a random one created once in the data dir.

Before the secret existed an owner id was ``key_`` and 24 hex digits of the key's SHA-256.
The HMAC is taken over that legacy id rather than over the key itself: a hash cannot be
inverted, so this is what lets schema step 3 re-key every stored row in place without
knowing any key, and a key keeps its objects across the upgrade.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from oasis.config import ConfigError

log = logging.getLogger(__name__)

SECRET_FILE = "owner_secret"
ANONYMOUS = "anonymous"  # requests without a key, where no keys are configured
LEGACY_PREFIX = "key_"
_PREFIX = "own_"


def legacy_owner_id(token: str) -> str:
    """The owner id of ``token`` before owner ids were keyed (a bare SHA-256)."""
    return LEGACY_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:24]


class OwnerIds:
    """Owner ids under this server's secret, which :meth:`open` loads (or creates)."""

    def __init__(self, data_dir: Path, configured_secret: str | None = None) -> None:
        self.data_dir = data_dir
        self._configured = configured_secret
        self._secret: bytes | None = None

    def open(self) -> None:
        """Load the secret: the configured one, else the data dir's, created on first use."""
        self._secret = load_secret(self.data_dir, self._configured)

    def of(self, token: str | None) -> str:
        """The owner id of the API key ``token`` (``anonymous`` without one)."""
        if not token:
            return ANONYMOUS
        return self.of_legacy(legacy_owner_id(token))

    def of_legacy(self, legacy: str) -> str:
        """The keyed form of a legacy owner id (what schema step 3 writes over it)."""
        if self._secret is None:
            raise RuntimeError("OwnerIds.open() must run before owner ids are derived")
        digest = hmac.new(self._secret, legacy.encode(), hashlib.sha256).hexdigest()
        return _PREFIX + digest[:32]


def load_secret(data_dir: Path, configured: str | None) -> bytes:
    """The configured secret, or the one in ``data_dir/owner_secret`` (created if absent).

    The file holds text, so an operator moving to replicas can hand its content to every
    replica as ``OASIS_OWNER_SECRET`` and keep every stored object reachable.
    """
    path = data_dir / SECRET_FILE
    if configured is not None:
        if path.exists() and _read(path) != configured.encode():
            log.warning(
                "owner_secret is set and differs from %s: objects stored under that file's "
                "secret are not reachable with this one",
                path,
            )
        return configured.encode()
    if not path.exists():
        _create(path)
    return _read(path)


def _read(path: Path) -> bytes:
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        # A fresh secret would orphan every stored object; better to stop and say so.
        raise ConfigError(f"{path} is empty; restore it, or set owner_secret")
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; it should be mode 0600", path)
    return text.encode()


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        # A link appears whole or not at all, and never replaces a secret that another
        # process starting on the same data dir created first.
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink(missing_ok=True)
