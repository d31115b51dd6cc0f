"""SMART Backend Services for the DTR payer operations (DTR ``spec-120``; SMART App Launch 2
"backend services"): a DTR app or EHR trades a signed JWT assertion for a short-lived access token, and
every ``/fhir`` POST needs one.

- Discovery: ``GET /fhir/.well-known/smart-configuration`` (token endpoint, ``private_key_jwt``, the
  signing algorithms, ``client_credentials``, the scopes).
- ``POST /fhir/auth/token`` (form-encoded): ``grant_type=client_credentials``, ``client_assertion_type``
  jwt-bearer, ``client_assertion`` (the JWT), ``scope``. The assertion is checked by the CDS Hooks
  client-JWT verifier on the same trusted-clients file and JWKS (``cds_service.auth``): trusted ``iss``,
  key by ``kid`` (inline JWKS or allowed ``jku``), signature, ``aud`` = the token endpoint URL (from
  ``CART_CDS_PUBLIC_BASE_URL``, else the request's host), ``exp``, ``jti`` never seen before; plus what
  SMART adds: ``sub`` = ``iss`` (the client id) and ``exp`` at most five minutes ahead. Errors are
  RFC 6749 JSON (``invalid_request``, ``invalid_client`` 401, ``unsupported_grant_type``,
  ``invalid_scope``), never saying which check failed; the reason code is logged, never the assertion.
- The access token is 32 random bytes, valid ``TOKEN_SECONDS`` (5 minutes), stored only as its SHA-256
  in the audit database (table ``dtr_access_token``), so every worker process accepts it; expired rows
  are deleted when a token is issued. Granted scope: the requested scopes this server supports.
  Scopes are not checked per operation (every operation here needs the same member data).

With ``CART_CDS_AUTH_DISABLED=true`` (development) the operations need no token and the token endpoint
refuses every client (there is no verifier).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta

import jwt
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import DateTime, String, delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from cds_service.audit.capture import EXTENSION_KEY as AUDIT_KEY
from cds_service.audit.models import Base
from cds_service.auth.guard import EXTENSION_KEY as CLIENT_AUTH_KEY
from cds_service.auth.guard import bearer_token
from cds_service.auth.verifier import ALLOWED_ALGORITHMS, AuthError
from cds_service.dtr.questionnaire import FHIR_BASE_PATH
from cds_service.settings import current_settings

log = logging.getLogger(__name__)

TOKEN_PATH = "/auth/token"
ACCESS_TOKENS_KEY = "cart_cds.dtr_access_tokens"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_SECONDS = 300
MAX_ASSERTION_SECONDS = 300  # SMART: the assertion's exp no more than five minutes in the future
SCOPES = ("system/Questionnaire.rs", "system/Questionnaire.read",
          "system/QuestionnaireResponse.c", "system/QuestionnaireResponse.write")

blueprint = Blueprint("dtr_smart", __name__, url_prefix=FHIR_BASE_PATH)


class AccessToken(Base):
    __tablename__ = "dtr_access_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_iss: Mapped[str] = mapped_column(String(512))
    scope: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessTokens:
    def __init__(self, engine: Engine, clock=lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self._clock = clock

    def issue(self, client_iss: str, scope: str) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self.engine.begin() as connection:
            connection.execute(delete(AccessToken).where(AccessToken.expires_at <= now))
            connection.execute(insert(AccessToken), {"token_hash": _hash(token), "client_iss": client_iss,
                                                     "scope": scope, "expires_at": now + timedelta(seconds=TOKEN_SECONDS)})
        return token

    def valid(self, token: str) -> bool:
        with self.engine.connect() as connection:
            expires = connection.scalar(select(AccessToken.expires_at).where(AccessToken.token_hash == _hash(token)))
        if expires is not None and expires.tzinfo is None:  # SQLite returns naive UTC
            expires = expires.replace(tzinfo=UTC)
        return expires is not None and expires > self._clock()


def install_smart_backend(app: Flask) -> None:
    """Access tokens in the audit trail's database (the audit store must be installed first)."""
    app.extensions[ACCESS_TOKENS_KEY] = AccessTokens(app.extensions[AUDIT_KEY].engine)
    app.register_blueprint(blueprint)


def fhir_root() -> str:
    return (current_settings().public_base_url or request.host_url).rstrip("/") + FHIR_BASE_PATH


def authorized() -> bool:
    """Whether this request carries a live access token issued here."""
    token = bearer_token(request.headers.get("Authorization"))
    tokens: AccessTokens | None = current_app.extensions.get(ACCESS_TOKENS_KEY)
    return token is not None and tokens is not None and tokens.valid(token)


def _oauth_error(code: str, status: int = 400) -> Response:
    response = jsonify({"error": code})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/.well-known/smart-configuration")
def smart_configuration() -> Response:
    return jsonify({
        "token_endpoint": fhir_root() + TOKEN_PATH,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ALGORITHMS),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": list(SCOPES),
        "capabilities": ["client-confidential-asymmetric"],
    })


@blueprint.post(TOKEN_PATH)
def token() -> Response:
    form = request.form
    if form.get("grant_type") != "client_credentials":
        return _oauth_error("unsupported_grant_type" if form.get("grant_type") else "invalid_request")
    assertion = form.get("client_assertion")
    if form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
        return _oauth_error("invalid_request")
    verifier = current_app.extensions.get(CLIENT_AUTH_KEY)
    if verifier is None:
        return _oauth_error("invalid_client", 401)
    try:
        client = verifier.verify(assertion, fhir_root() + TOKEN_PATH)
        claims = jwt.decode(assertion, options={"verify_signature": False})
        if claims.get("sub") != client.iss:
            raise AuthError("sub-not-iss", client.iss)
        if float(claims["exp"]) - datetime.now(UTC).timestamp() > MAX_ASSERTION_SECONDS + 60:
            raise AuthError("exp-too-far", client.iss)
    except AuthError as exc:
        log.warning("DTR client assertion refused", extra={"reason": exc.reason, "client": exc.client})
        return _oauth_error("invalid_client", 401)
    granted = [s for s in dict.fromkeys(form.get("scope", "").split()) if s in SCOPES]
    if not granted:
        return _oauth_error("invalid_scope")
    scope = " ".join(granted)
    response = jsonify({"access_token": current_app.extensions[ACCESS_TOKENS_KEY].issue(
        client.iss, scope), "token_type": "bearer", "expires_in": TOKEN_SECONDS, "scope": scope})
    response.headers["Cache-Control"] = "no-store"
    return response
