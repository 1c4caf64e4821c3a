"""Who a bearer token is: a config-file key, a database key, or (with no keys) anyone.

* A config-file key (``api_keys``) is checked in constant time against every configured
  key; its owner is an HMAC of the key (:mod:`oasis.owners`), as before projects existed.
* A database key (``oasis keys create``) is looked up by the hash of its secret (one
  indexed read); its owner is its project's id, so the keys of one project share their
  objects. What the read found (the key, or that there is none) is kept in process for
  ``key_cache_seconds`` (5 by default) under that hash, so a busy client costs one read per
  period, not one per request: a revocation (or a changed project limit) takes effect on
  every replica within that period. An expiry is checked on every request.
* With no key of either kind anywhere, every token is accepted and owns its own objects
  (rechecked as often: a first key issued on a running server is required within it).

Each caller gets its budgets: the key's own limits (a config key, or a token in open mode,
has the server's ``rate_limit_rpm`` / ``rate_limit_tpm``), and its project's.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict

from oasis.caller import Caller, UsageSink
from oasis.errors import AuthenticationError
from oasis.owners import OwnerIds
from oasis.store.keys import KeyGrant, KeyRepository, hash_secret
from oasis.store.rate_windows import Budget

NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


class GrantCache:
    """What the database said of each presented secret, by the secret's hash, for ``ttl``
    seconds. Unknown secrets are kept too (a client in open mode sends one on every
    request); the oldest entries go past ``size``, so random tokens cannot fill memory."""

    def __init__(self, ttl: float, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, KeyGrant | None]] = OrderedDict()

    def get(self, digest: str) -> tuple[bool, KeyGrant | None]:
        """(whether ``digest`` is known and fresh, what was read for it)."""
        entry = self._entries.get(digest)
        if entry is None or entry[0] <= time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, digest: str, grant: KeyGrant | None) -> None:
        if self.ttl <= 0:
            return
        self._entries[digest] = (time.monotonic() + self.ttl, grant)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class Access:
    """Resolves tokens to callers and their budgets."""

    def __init__(
        self,
        api_keys: list[str],
        owner_ids: OwnerIds,
        *,
        default_rpm: int | None = None,
        default_tpm: int | None = None,
        cache_seconds: float = 5.0,
    ) -> None:
        self._config_keys = [key.encode() for key in api_keys]
        self.owner_ids = owner_ids
        self.default_rpm = default_rpm
        self.default_tpm = default_tpm
        self._keys: KeyRepository | None = None
        self._sink: UsageSink | None = None
        self._issued = False  # once a database key exists, keys are required for good
        self._grants = GrantCache(cache_seconds)
        self._open_until = 0.0  # until when (monotonic) "no key exists" is trusted

    def open(self, keys: KeyRepository, sink: UsageSink) -> None:
        self._keys = keys
        self._sink = sink

    def _config_key(self, token: str) -> bool:
        candidate = token.encode()
        ok = False
        for key in self._config_keys:  # compare with every key: timing says nothing of which
            ok |= hmac.compare_digest(candidate, key)
        return ok

    async def _keys_required(self) -> bool:
        if self._config_keys or self._issued:
            return True
        now = time.monotonic()
        if now < self._open_until:
            return False
        assert self._keys is not None
        self._issued = await self._keys.any()
        if not self._issued:
            self._open_until = now + self._grants.ttl
        return self._issued

    async def _grant(self, token: str) -> KeyGrant | None:
        """The database key behind ``token``, as read at most ``cache_seconds`` ago."""
        assert self._keys is not None
        digest = hash_secret(token)
        known, grant = self._grants.get(digest)
        if not known:
            grant = await self._keys.grant(digest)
            self._grants.put(digest, grant)
        return grant

    async def authenticate(self, token: str | None) -> tuple[Caller, list[Budget]]:
        """The caller behind ``token`` and its budgets; 401 for a missing or bad key."""
        if self._keys is None:
            raise RuntimeError("Access.open() must run before requests are served")
        if token is not None and self._config_key(token):
            return self._open_caller(token)
        grant = await self._grant(token) if token else None
        if grant is not None:
            return self._granted(grant)
        if await self._keys_required():
            if token is None:
                raise AuthenticationError(NO_KEY)
            shown = f"{token[:3]}***{token[-4:]}" if len(token) > 8 else "***"
            raise AuthenticationError(
                f"Incorrect API key provided: {shown}.", code="invalid_api_key"
            )
        return self._open_caller(token)

    def _open_caller(self, token: str | None) -> tuple[Caller, list[Budget]]:
        """A config-file key, or any token while no keys exist: owner and limits by token."""
        owner = self.owner_ids.of(token)
        budget = Budget(f"owner:{owner}", self.default_rpm, self.default_tpm)
        return self._caller(owner, [budget]), [budget]

    def _granted(self, grant: KeyGrant) -> tuple[Caller, list[Budget]]:
        key = grant.key
        refusal = grant.refusal(time.time())
        if refusal is not None:
            raise AuthenticationError(refusal, code="invalid_api_key")
        budgets = [
            Budget(
                f"key:{key.id}",
                key.rpm if key.rpm is not None else self.default_rpm,
                key.tpm if key.tpm is not None else self.default_tpm,
            )
        ]
        if key.project_id is not None:
            project = Budget(f"project:{key.project_id}", grant.project_rpm, grant.project_tpm)
            budgets.append(project)
        caller = self._caller(key.project_id or f"admin:{key.id}", budgets)
        caller.key_id = key.id
        caller.project_id = key.project_id
        caller.admin = key.admin
        caller.max_tokens = grant.project_max_tokens
        return caller, budgets

    def _caller(self, owner: str, budgets: list[Budget]) -> Caller:
        charged = tuple(b.scope for b in budgets if b.tpm is not None)
        return Caller(owner=owner, charged_scopes=charged, sink=self._sink)
