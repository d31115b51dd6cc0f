"""The HTTP side of client authentication: every call under ``/cds-services`` (discovery, service,
feedback, and unknown paths alike) needs a valid client JWT, checked before the request is routed.

- CORS preflight ``OPTIONS`` passes unauthenticated (browsers never attach credentials to it);
- a refusal is a bare ``401`` with ``WWW-Authenticate: Bearer`` and no body, whatever the reason; the
  reason code is logged, never the token;
- the expected ``aud`` is the URL invoked, built from ``CART_CDS_PUBLIC_BASE_URL``, never from the request:
  the Host and ``X-Forwarded-*`` headers are the caller's to choose, so a token minted for another
  service would pass by spoofing them. With authentication on, the service refuses to start without
  that setting. Feedback also accepts its service URL.
- the ``jti`` store is shared by every worker: the audit database by default, Redis when
  ``CART_CDS_REDIS_URL`` is set (``jti_store``); when it cannot be asked the answer is ``503`` with an
  OperationOutcome (fail closed, and the client sees a retryable server-side condition).
- the verified caller is left in ``flask.g.cds_client`` (a ``VerifiedClient``) for the route, the
  fhirServer guard and the audit trail;
- when the client's entry lists ``fhir_servers``, a hook request naming another ``fhirServer`` is refused
  here (400 naming ``fhirServer``), before the service could send that client's EHR token anywhere else.
"""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response, g, request
from sqlalchemy.engine import Engine

from cds_service import metrics
from cds_service.auth.jti_store import JtiStoreUnavailable, jti_store_for
from cds_service.auth.jwks import JwksCache
from cds_service.auth.trusted_clients import TrustedClients
from cds_service.auth.verifier import AuthError, ClientJwtVerifier, VerifiedClient
from cds_service.errors import error_response

log = logging.getLogger(__name__)

PROTECTED_PREFIX = "/cds-services"
EXTENSION_KEY = "cart_cds.client_auth"


class AuthConfigurationError(ValueError):
    """Authentication is on but cannot work (no trusted-clients file, no public base URL); stops the start."""


def install_client_auth(app: Flask, settings, database: Engine) -> None:
    """Require client JWTs on the app's CDS Hooks routes, or log loudly that they are not required.
    ``database`` is the (migrated) audit database, the jti store when no Redis is configured."""
    if settings.auth_disabled:
        log.warning("client JWT authentication is DISABLED (CART_CDS_AUTH_DISABLED=true): development only")
        app.extensions[EXTENSION_KEY] = None
        return
    if settings.trusted_clients_file is None:
        raise AuthConfigurationError(
            "CART_CDS_TRUSTED_CLIENTS_FILE must name the trusted-clients file "
            "(or set CART_CDS_AUTH_DISABLED=true for local development)")
    if settings.public_base_url is None:
        raise AuthConfigurationError(
            "CART_CDS_PUBLIC_BASE_URL must be set to the service's public URL (for example "
            "https://cds.payer.example): the client JWT's aud is checked against it, never against the "
            "request's Host header")
    clients = TrustedClients.load(settings.trusted_clients_file)
    verifier = ClientJwtVerifier(
        clients, JwksCache(), jti_store_for(settings.redis_url, database), leeway_seconds=settings.jwt_leeway_seconds,
        max_lifetime_seconds=settings.jwt_max_lifetime_seconds)
    app.extensions[EXTENSION_KEY] = verifier
    base_url = settings.public_base_url

    @app.before_request
    def require_client_jwt():
        if request.method == "OPTIONS" or not _protected(request.path):
            return None
        token = bearer_token(request.headers.get("Authorization"))
        route = request.url_rule.rule if request.url_rule else None
        if token is None:
            log.warning("client JWT refused", extra={"reason": "missing-token", "route": route})
            metrics.jwt_refused("missing-token")
            return unauthorized()
        try:
            g.cds_client = verifier.verify(token, expected_audiences(base_url, request.path))
        except AuthError as exc:
            log.warning("client JWT refused", extra={"reason": exc.reason, "client": exc.client, "route": route})
            metrics.jwt_refused(exc.reason)
            return unauthorized()
        except JtiStoreUnavailable:
            log.error("jti store unavailable; client JWT refused", extra={"route": route})
            metrics.jwt_refused("jti-store-unavailable")
            response = error_response(503, "the token replay store is unavailable; retry later")
            response.headers["Retry-After"] = "5"
            return response
        return _refuse_foreign_fhir_server(g.cds_client)


def _refuse_foreign_fhir_server(caller: VerifiedClient) -> Response | None:
    if not caller.client.fhir_servers or request.method != "POST" or request.path.endswith("/feedback"):
        return None
    try:
        body = orjson.loads(request.get_data(cache=True))
    except orjson.JSONDecodeError:
        return None  # the route answers 400 for the body itself
    fhir_server = body.get("fhirServer") if isinstance(body, dict) else None
    if isinstance(fhir_server, str) and not caller.client.allows_fhir_server(fhir_server):
        log.warning("fhirServer not allowed for client", extra={"client": caller.iss, "reason": "fhir-server"})
        return error_response(400, "is not an allowed FHIR server for this client", "fhirServer")
    return None


def _protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token and " " not in token else None


def expected_audiences(base_url: str, path: str) -> list[str]:
    """The URL invoked, and for feedback also the service URL (CDS Hooks 2.0 shows no ``aud`` for a
    feedback call, and a client may sign it for the service it gives feedback on)."""
    url = base_url.rstrip("/") + path
    audiences = [url]
    if path.endswith("/feedback"):
        audiences.append(url[: -len("/feedback")])
    return audiences


def unauthorized() -> Response:
    """Bare 401: no body, no hint which check failed (CDS Hooks best practice)."""
    return Response(status=401, headers={"WWW-Authenticate": "Bearer"})
