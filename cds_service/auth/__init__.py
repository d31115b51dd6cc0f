"""Client authentication: trusted EHRs prove who they are with a signed JWT on every CDS Hooks call.

``install_client_auth(app, settings)`` wires it into the Flask app; ``ClientJwtVerifier`` does the
checks (``verifier``), ``TrustedClients`` holds the allow-list (``trusted_clients``), ``JwksCache`` the
clients' public keys (``jwks``).
"""

from cds_service.auth.guard import AuthConfigurationError, install_client_auth
from cds_service.auth.trusted_clients import (
    TrustedClient,
    TrustedClients,
    TrustedClientsError,
)
from cds_service.auth.verifier import (
    ALLOWED_ALGORITHMS,
    AuthError,
    ClientJwtVerifier,
    VerifiedClient,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AuthConfigurationError",
    "AuthError",
    "ClientJwtVerifier",
    "TrustedClient",
    "TrustedClients",
    "TrustedClientsError",
    "VerifiedClient",
    "install_client_auth",
]
