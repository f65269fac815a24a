"""API keys for the HTTP producer API: created once, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

from eventlog.models import ApiKey

KEY_PREFIX = "evl_"


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def create_api_key(name: str) -> tuple[ApiKey, str]:
    """Create a key named `name`. Returns the stored row and the raw key, which is not kept."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(name=name, prefix=raw_key[:12], key_hash=hash_key(raw_key))
    return api_key, raw_key


def authenticate(authorization_header: str | None) -> ApiKey | None:
    """The key named by an `Authorization: Bearer <key>` header, or None if absent or unknown."""
    if not authorization_header:
        return None
    scheme, _, raw_key = authorization_header.partition(" ")
    if scheme.lower() != "bearer" or not raw_key.strip():
        return None
    return ApiKey.objects.filter(key_hash=hash_key(raw_key.strip())).first()
