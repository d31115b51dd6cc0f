"""The application factory and the cross-cutting HTTP policy (CORS, body limit, error bodies).

``create_app(settings=None, *, as_of=None)`` builds a new Flask app; nothing is created or read at import time. When
``settings`` is None they are read from the ``CART_CDS_*`` environment (and a bad value raises
``SettingsError`` naming the variable). Tests pass a ``Settings`` object.

Order of ``before_request`` hooks matters: the CORS preflight answer is registered first, so a preflight
``OPTIONS`` is answered before (and without) client authentication, as browsers send no credentials on it;
then ``cds_service.security`` installs the audit trail, client JWT checks and input limits.
"""

from __future__ import annotations

from datetime import date

from flask import Flask, Response, current_app, request

from cds_service import routes
from cds_service.dtr import routes as dtr_routes
from cds_service.errors import register_error_handlers
from cds_service.feedback import FEEDBACK_LOG_KEY, FeedbackLog
from cds_service.order_sign import SERVICE_KEY, OrderSignService
from cds_service.security import install_security
from cds_service.settings import CONFIG_KEY, Settings, current_settings
CORS_ALLOWED_HEADERS = "Authorization, Content-Type"
CORS_ALLOWED_METHODS = "GET, POST, OPTIONS"


def create_app(settings: Settings | None = None, *, as_of: date | None = None) -> Flask:
    """``as_of`` fixes the decision date of every hook call (tests, sandbox replays); None means the
    current date at each call."""
    settings = settings if settings is not None else Settings.from_env()
    app = Flask("cds_service")
    app.config.update({"MAX_CONTENT_LENGTH": settings.max_body_bytes, CONFIG_KEY: settings,
                       routes.AS_OF_CONFIG_KEY: as_of})
    app.extensions[FEEDBACK_LOG_KEY] = FeedbackLog()
    app.extensions[SERVICE_KEY] = OrderSignService.from_settings(settings)  # policies validated here, once

    app.before_request(_answer_cors_preflight)
    install_security(app, settings)  # audit, client JWT, input limits: after the preflight answer
    app.after_request(_add_cors_headers)
    register_error_handlers(app)
    app.register_blueprint(routes.blueprint)
    app.register_blueprint(dtr_routes.blueprint)
    return app


def _allowed_origin() -> str | None:
    origin = request.headers.get("Origin", "").lower()
    return origin if origin and origin in current_settings().cors_origins else None


def _answer_cors_preflight() -> Response | None:
    """A preflight (OPTIONS with Access-Control-Request-Method) on a known route is answered at once."""
    if request.method != "OPTIONS" or request.url_rule is None:
        return None
    response = current_app.make_default_options_response()
    response.status_code = 204
    return response


def _add_cors_headers(response: Response) -> Response:
    origin = _allowed_origin()
    response.vary.add("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = CORS_ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = CORS_ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
    return response
