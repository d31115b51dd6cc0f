"""The JWT ``jti`` store: a token id is accepted once, and remembered until the token expires.

CDS Hooks best practice asks services to keep processed ``jti`` values until their ``exp`` and reject
repeats. With one process an in-memory store is enough; with several gunicorn workers or hosts every
worker must see the same set, so ``CART_CDS_REDIS_URL`` switches to Redis, where ``SET NX`` with an
expiry makes "first use" one atomic operation. This is the only per-request state the service keeps
outside the request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Protocol


class JtiStoreUnavailable(RuntimeError):
    """The shared store could not be asked; the caller must refuse the token (fail closed)."""


class JtiStore(Protocol):
    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        """True exactly once per (issuer, jti) until ``expires_at`` (epoch seconds); then False."""


def storage_key(issuer: str, jti: str) -> str:
    """The key a (issuer, jti) pair is remembered under: hashed, so its size is bounded whatever the
    client sends and no raw client string becomes a Redis key."""
    return hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()


class MemoryJtiStore:
    """Per-process store; expired entries are dropped as new ones arrive."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0

    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        key = storage_key(issuer, jti)
        now = self._clock()
        with self._lock:
            if len(self._expiry) >= self._next_sweep:
                self._expiry = {k: exp for k, exp in self._expiry.items() if exp > now}
                self._next_sweep = max(1024, 2 * len(self._expiry))
            if self._expiry.get(key, 0) > now:
                return False
            self._expiry[key] = expires_at
            return True

    def __len__(self) -> int:
        return len(self._expiry)


class RedisJtiStore:
    """Shared store: ``SET key 1 NX EXAT exp`` succeeds only for the first worker that sees the jti."""

    PREFIX = "cart-cds:jti:"

    def __init__(self, client, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._clock = clock

    @classmethod
    def from_url(cls, url: str) -> RedisJtiStore:
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0))

    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        import redis

        # Keep at least one second so an already-expired (within leeway) token is still remembered.
        ttl_ms = max(1000, int((expires_at - self._clock()) * 1000) + 1000)
        try:
            return bool(self._client.set(self.PREFIX + storage_key(issuer, jti), b"1", nx=True, px=ttl_ms))
        except redis.RedisError as exc:
            raise JtiStoreUnavailable(type(exc).__name__) from exc


def jti_store_from_url(redis_url: str | None) -> JtiStore:
    """Redis when a URL is configured, else the in-memory store."""
    return RedisJtiStore.from_url(redis_url) if redis_url else MemoryJtiStore()
