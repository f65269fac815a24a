"""API keys for the HTTP API: created once, shown once, stored as a SHA-256 hash; each with its
scopes (ingest, read) and, optionally, the only environments it may send or read."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Sequence

from eventlog.models import ApiKey

KEY_PREFIX = "evl_"
# How long a web process trusts a key it has looked up: a deleted key is refused at the latest this
# long after. Without it every request would wait for one more PostgreSQL round trip.
KEY_CACHE_SECONDS = 30.0
_KEY_CACHE_SIZE = 1_000


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def create_api_key(
    name: str, scopes: Sequence[str] = ("ingest",), environments: Sequence[str] = ()
) -> tuple[ApiKey, str]:
    """Create a key named `name`. Returns the stored row and the raw key, which is not kept.
    Raises ValueError for an unknown scope, no scope, or an empty environment name."""
    unknown = set(scopes) - set(ApiKey.Scope.values)
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(ApiKey.Scope.values)}, got {', '.join(scopes)}")
    if any(not environment.strip() for environment in environments):
        raise ValueError("an environment name may not be empty")
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        name=name,
        prefix=raw_key[:12],
        key_hash=hash_key(raw_key),
        scopes=sorted(set(scopes)),
        environments=sorted(set(environments)),
    )
    return api_key, raw_key


class KeyCache:
    """Keys found in the database, by hash, each for `ttl_seconds`. Unknown keys are not cached
    (they would let anyone fill the cache), and a full cache starts afresh. Thread-safe."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._keys: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def lookup(self, key_hash: str) -> ApiKey | None:
        now = self.clock()
        with self._lock:
            cached = self._keys.get(key_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        api_key = ApiKey.objects.filter(key_hash=key_hash).first()
        with self._lock:
            if api_key is None:
                self._keys.pop(key_hash, None)
                return None
            if len(self._keys) >= _KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[key_hash] = (now + self.ttl_seconds, api_key)
        return api_key


_cache = KeyCache(KEY_CACHE_SECONDS)


def authenticate(authorization_header: str | None, cache: KeyCache = _cache) -> ApiKey | None:
    """The key named by an `Authorization: Bearer <key>` header, or None if absent or unknown.
    A deleted key may still be accepted for `cache.ttl_seconds`."""
    if not authorization_header:
        return None
    scheme, _, raw_key = authorization_header.partition(" ")
    if scheme.lower() != "bearer" or not raw_key.strip():
        return None
    return cache.lookup(hash_key(raw_key.strip()))
