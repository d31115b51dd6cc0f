"""Public signing keys of trusted clients: inline JWKS, or JWKS fetched from allow-listed ``jku`` URLs.

Fetched sets are cached (``ttl`` seconds) so a hook call normally costs no HTTP. A ``kid`` missing from
a cached set usually means the client rotated its keys, so the set is fetched again once -- but at most
every ``min_refetch_seconds`` per URL, so a stream of tokens with made-up ``kid`` values cannot turn the
service into a request amplifier against the EHR. Callers must have checked the URL against the
client's allow-list before asking (see ``verifier``); this module fetches whatever it is given.

A key lookup is part of a hook's time budget, so it never takes longer than ``timeout_seconds``, even
against a JWKS host that accepts connections and never answers (issue 17: four concurrent calls behind
one global lock were answered after 3, 6, 9 and 12 s):
- one fetch per URL at a time ("single flight"): it runs in its own thread, and every caller wanting
  that URL -- the one that started it included -- waits for it at most ``timeout_seconds``; callers of
  other URLs never wait on it (the lock guards only the tables, never a fetch);
- a failure (error, or no answer within the timeout) is remembered for ``failure_ttl_seconds``: during
  that time callers get the last good set, or an immediate ``JwksFetchError`` when there is none,
  instead of queueing on a dead host.
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
        failure_ttl_seconds: float = 30.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout_seconds
        self._ttl = ttl_seconds
        self._min_refetch = min_refetch_seconds
        self._failure_ttl = failure_ttl_seconds
        self._session = session or requests.Session()
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._failed_at: dict[str, float] = {}
        self._flights: dict[str, threading.Event] = {}
        self._lock = threading.Lock()  # guards the three tables above; never held while fetching

    def key(self, jku: str, kid: str) -> PublicKey | None:
        """The key ``kid`` of the set at ``jku``; None when the set (even refreshed) lacks it.

        Raises ``JwksFetchError`` when the set cannot be obtained at all."""
        with self._lock:
            flight = self._flights.get(jku)
            if flight is None and self._wants_fetch(jku, kid, self._clock()):
                flight = self._flights[jku] = threading.Event()
                threading.Thread(target=self._refresh, args=(jku, flight), daemon=True,
                                 name="cart-cds-jwks-fetch").start()
        if flight is not None and not flight.wait(self._timeout):
            self._record_failure(jku)  # later callers do not queue on a host that does not answer
        with self._lock:
            entry = self._entries.get(jku)
        if entry is None:
            raise JwksFetchError("unavailable")
        return entry.keys.get(kid)

    def _wants_fetch(self, jku: str, kid: str, now: float) -> bool:
        failed_at = self._failed_at.get(jku)
        if failed_at is not None and now - failed_at < self._failure_ttl:
            return False
        entry = self._entries.get(jku)
        if entry is None or now - entry.fetched_at >= self._ttl:
            return True
        return kid not in entry.keys and now - entry.fetched_at >= self._min_refetch

    def _refresh(self, jku: str, flight: threading.Event) -> None:
        """The fetch thread: store the new set, or the failure (the last good set stays in use)."""
        try:
            keys = self._fetch(jku)
            with self._lock:
                self._entries[jku] = _Entry(keys, self._clock())
                self._failed_at.pop(jku, None)
        except Exception as exc:  # noqa: BLE001 - the fetch thread always ends with a recorded outcome
            log.warning("jwks fetch failed", extra={"reason": str(exc) if isinstance(exc, JwksFetchError)
                                                      else type(exc).__name__})
            self._record_failure(jku)
        finally:
            with self._lock:
                self._flights.pop(jku, None)
            flight.set()

    def _record_failure(self, jku: str) -> None:
        with self._lock:
            self._failed_at[jku] = self._clock()

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
