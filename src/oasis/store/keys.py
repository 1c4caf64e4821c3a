"""API keys issued from the database: only a SHA-256 of each secret is stored.

A secret carries 256 random bits, so a plain hash is enough: nothing can be guessed back
from it (a password would need a slow hash; a key does not). The lookup is by that hash,
and the stored hash is compared again in constant time before the key is trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from oasis.ids import new_id
from oasis.store.tables import api_keys, projects

SECRET_PREFIX = "sk-oasis-"


def hash_secret(secret: str) -> str:
    """The stored form of a key's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never its secret."""

    id: str
    redacted: str
    name: str | None
    project_id: str | None
    admin: bool
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True)
class KeyGrant:
    """What a presented secret is worth: its key and the key's project's limits."""

    key: ApiKey
    project_rpm: int | None = None
    project_tpm: int | None = None
    project_max_tokens: int | None = None

    def refusal(self, now: float) -> str | None:
        """Why this key may not be used now (revoked, expired), or None."""
        if self.key.revoked_at is not None:
            return "This API key has been revoked."
        if self.key.expires_at is not None and self.key.expires_at <= now:
            return "This API key has expired."
        return None


class KeyRepository:
    """Issue, list, revoke and look up keys."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        *,
        project_id: str | None,
        name: str | None = None,
        admin: bool = False,
        expires_at: int | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (which is not stored, so shown only this once)."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id=new_id("key", nbytes=12),
            redacted=f"{secret[:12]}...{secret[-4:]}",
            name=name,
            project_id=project_id,
            admin=admin,
            created_at=int(time.time()),
            expires_at=expires_at,
            revoked_at=None,
            rpm=rpm,
            tpm=tpm,
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                api_keys.insert().values(secret_hash=hash_secret(secret), **key.__dict__)
            )
        return key, secret

    async def list(self, project_id: str | None = None) -> list[ApiKey]:
        query = select(*_KEY_COLUMNS).order_by(api_keys.c.created_at)
        if project_id is not None:
            query = query.where(api_keys.c.project_id == project_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_key(row) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        """Mark the key revoked; False when there is no such key (or it was revoked)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(and_(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)))
                .values(revoked_at=int(time.time()))
            )
        return bool(result.rowcount)

    async def any(self) -> bool:
        """Whether any key was ever issued (then every request must present one)."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(api_keys.c.id).limit(1))).first() is not None

    async def grant(self, digest: str) -> KeyGrant | None:
        """The key whose secret hashes to ``digest`` (:func:`hash_secret`), with its
        project's limits; None if there is none. Read afresh from the database."""
        query = (
            select(
                *_KEY_COLUMNS,
                api_keys.c.secret_hash,
                projects.c.rpm.label("project_rpm"),
                projects.c.tpm.label("project_tpm"),
                projects.c.max_tokens.label("project_max_tokens"),
            )
            .select_from(api_keys.outerjoin(projects, projects.c.id == api_keys.c.project_id))
            .where(api_keys.c.secret_hash == digest)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            return None
        return KeyGrant(_key(row), row.project_rpm, row.project_tpm, row.project_max_tokens)


_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.redacted,
    api_keys.c.name,
    api_keys.c.project_id,
    api_keys.c.admin,
    api_keys.c.created_at,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
    api_keys.c.rpm,
    api_keys.c.tpm,
)


def _key(row: Any) -> ApiKey:
    return ApiKey(**{column.name: getattr(row, column.name) for column in _KEY_COLUMNS})
