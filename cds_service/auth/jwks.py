"""Public signing keys of trusted clients: inline JWKS, or JWKS fetched from allow-listed ``jku`` URLs.

Fetched sets are cached (``ttl`` seconds) so a hook call normally costs no HTTP. A ``kid`` missing from
a cached set usually means the client rotated its keys, so the set is fetched again once -- but at most
every ``min_refetch_seconds`` per URL, so a stream of tokens with made-up ``kid`` values cannot turn the
service into a request amplifier against the EHR. Callers must have checked the URL against the
client's allow-list before asking (see ``verifier``); this module fetches whatever it is given.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt
import requests

if TYPE_CHECKING:
    from jwt.algorithms import AllowedPublicKeys

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True)
class PublicKey:
    """A client's public key and the algorithm its JWK declares (None when it declares none)."""

    key: AllowedPublicKeys
    alg: str | None


def keys_by_kid(jwks: object) -> dict[str, PublicKey]:
    """The usable public keys of a JWKS, by ``kid``; keys without a kid, with private parts, symmetric
    (``oct``) or otherwise unsupported, or not for signatures are left out."""
    out: dict[str, PublicKey] = {}
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    for raw in keys if isinstance(keys, list) else ():
        if not isinstance(raw, dict) or not isinstance(raw.get("kid"), str) or "d" in raw:
            continue
        if raw.get("kty") not in {"EC", "RSA"}:
            continue
        if raw.get("use", "sig") != "sig":
            continue
        try:
            out[raw["kid"]] = PublicKey(jwt.PyJWK(raw).key, raw.get("alg"))
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
    return out


@dataclass
class _Entry:
    keys: dict[str, PublicKey]
    fetched_at: float


class JwksFetchError(RuntimeError):
    """The JWKS could not be fetched or parsed (reason code in ``args[0]``)."""


class JwksCache:
    def __init__(
        self,
        *,
        timeout_seconds: float = 3.0,
        ttl_seconds: float = 3600.0,
        min_refetch_seconds: float = 60.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout_seconds
        self._ttl = ttl_seconds
        self._min_refetch = min_refetch_seconds
        self._session = session or requests.Session()
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def key(self, jku: str, kid: str) -> PublicKey | None:
        """The key ``kid`` of the set at ``jku``; None when the set (even refreshed) lacks it.

        Raises ``JwksFetchError`` when the set cannot be obtained at all."""
        with self._lock:
            entry = self._entries.get(jku)
            now = self._clock()
            stale = entry is None or now - entry.fetched_at >= self._ttl
            rotated = entry is not None and kid not in entry.keys and now - entry.fetched_at >= self._min_refetch
            if stale or rotated:
                try:
                    entry = self._entries[jku] = _Entry(self._fetch(jku), now)
                except JwksFetchError:
                    if entry is None:
                        raise
                    entry.fetched_at = now  # keep serving the old set; try again after min_refetch
            assert entry is not None, "fetched now, or the old set kept"
            return entry.keys.get(kid)

    def _fetch(self, jku: str) -> dict[str, PublicKey]:
        try:
            with self._session.get(jku, timeout=self._timeout, allow_redirects=False, stream=True) as resp:
                if resp.status_code != 200:
                    raise JwksFetchError(f"http-{resp.status_code}")
                body = resp.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
        except requests.RequestException as exc:
            raise JwksFetchError(type(exc).__name__) from exc
        if len(body) > MAX_JWKS_BYTES:
            raise JwksFetchError("too-large")
        try:
            keys = keys_by_kid(json.loads(body))
        except ValueError as exc:
            raise JwksFetchError("not-json") from exc
        log.info("jwks fetched", extra={"count": len(keys)})
        return keys
