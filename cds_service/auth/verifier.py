"""Verification of the client JWT an EHR sends with every CDS Hooks call (CDS Hooks 2.0 §Trusting CDS
Clients, and its best-practice checklist).

Order matters: everything that can be decided from the token's unverified header and ``iss`` is decided
before any key is looked up, and a ``jku`` is compared with the client's allow-list before anything is
fetched, so an untrusted token can never make the service send a request. The ``jti`` is recorded only
once the signature and every claim have passed, so forged tokens cannot fill the jti store.

Keys: when the issuer has pinned keys (an inline JWKS in the trusted-clients file) and one has the
token's ``kid``, it verifies the token and nothing is fetched, whatever ``jku`` the header names (the
public CDS Hooks sandbox always sends one; a locked-down deployment pins its key instead). Otherwise a
``jku`` must be on the client's allow-list, and only then is it fetched.

Claims are untyped JSON until checked: ``exp``, ``iat`` and ``nbf`` must be JSON numbers (PyJWT would
read ``"1900000000"`` with ``int()``), and a token may not live longer than ``max_lifetime_seconds``
(``exp - iat``, plus the leeway): CDS Hooks clients mint one short-lived token per call, and a
ten-year token would be a bearer credential for ten years -- and keep its ``jti`` in the store as long.

Each refusal raises ``AuthError`` with a short reason code for the log; the HTTP layer answers a bare
401 whatever the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jwt

from cds_service.auth.jti_store import JtiStore
from cds_service.auth.jwks import JwksCache, JwksFetchError, PublicKey, keys_by_kid
from cds_service.auth.trusted_clients import TrustedClient, TrustedClients

# Asymmetric algorithms only: never "none", never HS* (a public key must not double as an HMAC secret).
ALLOWED_ALGORITHMS = ("ES384", "RS384", "ES256", "RS256", "PS384")
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
TIME_CLAIMS = ("exp", "iat", "nbf")


class AuthError(Exception):
    """The token is refused; ``reason`` is a log-safe code such as ``expired`` or ``jku-not-allowed``."""

    def __init__(self, reason: str, client: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.client = client


@dataclass(frozen=True)
class VerifiedClient:
    """Who called: the trusted client entry plus the token's log-safe identifiers."""

    client: TrustedClient
    jti: str
    tenant: str | None

    @property
    def iss(self) -> str:
        return self.client.iss


_CLAIM_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not-yet-valid"),
    (jwt.InvalidAudienceError, "wrong-aud"),
    (jwt.InvalidIssuerError, "wrong-iss"),
    (jwt.MissingRequiredClaimError, "missing-claim"),
    (jwt.InvalidSignatureError, "bad-signature"),
    (jwt.InvalidIssuedAtError, "bad-iat"),
)


class ClientJwtVerifier:
    def __init__(
        self,
        clients: TrustedClients,
        jwks: JwksCache,
        jti_store: JtiStore,
        *,
        leeway_seconds: int = 30,
        max_lifetime_seconds: float | None = 300,
        verify_exp: bool = True,
    ) -> None:
        """``max_lifetime_seconds`` None: no limit on ``exp - iat`` (only to check historic examples)."""
        self._clients = clients
        self._jwks = jwks
        self._jti_store = jti_store
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds
        self._verify_exp = verify_exp
        self._inline = {c.iss: keys_by_kid(c.jwks) for c in clients if c.jwks}

    def verify(self, token: str, audience: str | list[str]) -> VerifiedClient:
        """Check ``token`` as sent to the URL(s) in ``audience``; raise ``AuthError`` or return the caller."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError):
            raise AuthError("malformed") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise AuthError("alg-not-allowed")
        if not isinstance(header.get("typ"), str) or header["typ"].upper() != "JWT":
            raise AuthError("bad-typ")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("missing-kid")
        client = self._clients.get(unverified.get("iss"))
        if client is None:
            raise AuthError("untrusted-iss")
        if not all(_is_number(unverified[c]) for c in TIME_CLAIMS if c in unverified):
            raise AuthError("bad-time-claim", client.iss)
        key = self._key(client, header.get("jku"), kid)
        if key.alg is not None and key.alg != alg:
            raise AuthError("alg-key-mismatch", client.iss)

        audiences = [audience] if isinstance(audience, str) else list(audience)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audiences + list(client.audiences),
                issuer=client.iss,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": self._verify_exp},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(_claim_reason(exc), client.iss) from None
        except (ValueError, TypeError):  # e.g. a key of the wrong type for the algorithm
            raise AuthError("bad-signature", client.iss) from None

        if self._max_lifetime is not None and claims["exp"] - claims["iat"] > self._max_lifetime + self._leeway:
            raise AuthError("lifetime-too-long", client.iss)
        tenant = claims.get("tenant")
        if client.tenant is not None and tenant != client.tenant:
            raise AuthError("wrong-tenant", client.iss)
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise AuthError("bad-jti", client.iss)
        if not self._jti_store.first_use(client.iss, jti, float(claims["exp"]) + self._leeway):
            raise AuthError("replayed-jti", client.iss)
        return VerifiedClient(client=client, jti=jti, tenant=tenant if isinstance(tenant, str) else None)

    def _key(self, client: TrustedClient, jku: object, kid: str) -> PublicKey:
        pinned = self._inline.get(client.iss, {}).get(kid)
        if pinned is not None:  # a pinned key wins: nothing is fetched, whatever jku says
            return pinned
        if jku is not None:
            if jku not in client.jku:  # before any fetch: a token never chooses what we request
                raise AuthError("jku-not-allowed", client.iss)
            urls: tuple[str, ...] = (jku,)
        else:
            urls = client.jku  # keys exchanged out of band: the client's own configured sets
        for url in urls:
            try:
                key = self._jwks.key(url, kid)
            except JwksFetchError:
                raise AuthError("jwks-unavailable", client.iss) from None
            if key is not None:
                return key
        raise AuthError("unknown-kid", client.iss)


def _is_number(value: object) -> bool:
    """A finite JSON number (bool is an int in Python, but ``true`` is no time; NaN compares false with
    every time, so it would never expire)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _claim_reason(exc: Exception) -> str:
    for kind, reason in _CLAIM_ERRORS:
        if isinstance(exc, kind):
            return reason
    return "invalid-token"
