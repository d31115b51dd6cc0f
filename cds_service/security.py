"""One call that puts the security and audit layer on the app: PHI-safe logging, the audit trail,
client JWT authentication and hostile-input limits.

Registered by ``create_app`` after the CORS preflight answer, so a preflight never needs a JWT. The
``before_request`` order is: audit clock, client JWT, input limits; the route runs only after all three.
"""

from __future__ import annotations

from flask import Flask

from cds_service.audit import AuditSpool, AuditStore, install_audit
from cds_service.auth import install_client_auth
from cds_service.input_limits import install_input_limits
from cds_service.log_safety import configure_logging


def install_security(app: Flask, settings) -> None:
    configure_logging(settings.log_level)
    store = AuditStore.from_url(settings.database_url)  # runs the migrations at start-up
    install_audit(app, store, AuditSpool(settings.audit_spool_dir, settings.audit_spool_max_records))
    install_client_auth(app, settings, store.engine)  # the audit database keeps the jti store without Redis
    install_input_limits(app)
