"""The JWT ``jti`` store: a token id is accepted once, and remembered until the token expires.

CDS Hooks best practice asks services to keep processed ``jti`` values until their ``exp`` and reject
repeats. Every gunicorn worker checks tokens itself, so the store must be shared by all of them, or a
token replayed to another worker is accepted again (issue 17: one token, four workers, four
acceptances). Two shared stores, no per-process one:

- by default the audit database (``CART_CDS_DATABASE_URL``), which every worker of the deployment
  already shares: table ``auth_jti`` (created by the Alembic migration ``0002``) with the hashed token id
  as primary key, so "first use" is one atomic INSERT whichever worker wins; a second INSERT fails on
  the key. An entry past its expiry is reclaimed by an UPDATE guarded on that expiry (also atomic), and
  expired rows are swept now and then, so the table holds only live tokens -- and tokens live at most
  ``CART_CDS_JWT_MAX_LIFETIME_SECONDS`` plus leeway (the verifier refuses longer ones).
- Redis when ``CART_CDS_REDIS_URL`` is set (several hosts without a shared database, or to keep the
  jti traffic off it), where ``SET NX`` with an expiry is the same atomic first use.

Either store, unreachable, raises ``JtiStoreUnavailable``: the token is refused with 503 (fail closed).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Column, Float, MetaData, String, Table, delete, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError


class JtiStoreUnavailable(RuntimeError):
    """The shared store could not be asked; the caller must refuse the token (fail closed)."""


class JtiStore(Protocol):
    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        """True exactly once per (issuer, jti) until ``expires_at`` (epoch seconds); then False."""


def storage_key(issuer: str, jti: str) -> str:
    """The key a (issuer, jti) pair is remembered under: hashed, so its size is bounded whatever the
    client sends and no raw client string becomes a key."""
    return hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()


# The table as migration 0002 creates it (described here for the store's statements only).
JTI_TABLE = Table("auth_jti", MetaData(), Column("key", String(64), primary_key=True),
                  Column("expires_at", Float, nullable=False))
_INSERT = insert(JTI_TABLE)


class DatabaseJtiStore:
    """Shared by every worker (and host) using the same database; see the module docstring."""

    SWEEP_EVERY = 1000  # first uses between deletions of expired rows (per process)

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self._uses = 0

    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        key = storage_key(issuer, jti)
        try:
            try:
                with self._engine.begin() as connection:
                    connection.execute(_INSERT, {"key": key, "expires_at": expires_at})
            except IntegrityError:
                return self._reclaim_expired(key, expires_at)
            self._sweep_now_and_then()
        except SQLAlchemyError as exc:
            raise JtiStoreUnavailable(type(exc).__name__) from exc
        return True

    def _reclaim_expired(self, key: str, expires_at: float) -> bool:
        """The key is taken: it is free again only if the token that took it has expired."""
        statement = (update(JTI_TABLE).where(JTI_TABLE.c.key == key, JTI_TABLE.c.expires_at <= self._clock())
                     .values(expires_at=expires_at))
        with self._engine.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def _sweep_now_and_then(self) -> None:
        with self._lock:
            self._uses += 1
            due = self._uses % self.SWEEP_EVERY == 0
        if due:
            with self._engine.begin() as connection:
                connection.execute(delete(JTI_TABLE).where(JTI_TABLE.c.expires_at <= self._clock()))


class RedisJtiStore:
    """Shared store: ``SET key 1 NX PX ttl`` succeeds only for the first worker that sees the jti."""

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


def jti_store_for(redis_url: str | None, database: Engine) -> JtiStore:
    """Redis when a URL is configured, else the (migrated) audit database every worker shares."""
    return RedisJtiStore.from_url(redis_url) if redis_url else DatabaseJtiStore(database)
