"""HTTP routes: parse, call the use case, serialise. No decisions are made here.

``GET /cds-services``                      discovery document
``POST /cds-services/<id>``                order-sign hook call
``POST /cds-services/car-t-coverage-dispatch``  order-dispatch hook call
``POST /cds-services/<id>/feedback``       card feedback
``GET /healthz``                           liveness for load balancers
``GET /readyz``                            readiness: 503 "degraded" while the audit store is unreachable
                                           or spooled records wait to be replayed
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request

from cds_service import audit
from cds_service.discovery import DISPATCH_SERVICE_ID, SERVICE_ID, discovery_document
from cds_service.dtr.store import keep_decisions
from cds_service.errors import UnknownServiceError, UnsupportedMediaTypeError
from cds_service.feedback import FEEDBACK_LOG_KEY, parse_feedback
from cds_service.hook_request import decode_json, order_sign_request
from cds_service.input_limits import parsed_body
from cds_service.order_dispatch import order_dispatch_request
from cds_service.order_sign import SERVICE_KEY, handle_order_sign
from cds_service.settings import current_settings

blueprint = Blueprint("cds_services", __name__)
AS_OF_CONFIG_KEY = "CART_CDS_AS_OF"  # app.config: a fixed decision date, or None for "today"


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _check_media_type() -> None:
    mimetype = request.mimetype
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise UnsupportedMediaTypeError("Content-Type must be application/json")


_NOT_PARSED = object()


def _decoded_json_body() -> Any:
    """The request body as JSON after the media-type check, parsed once per request: the input limits
    already parsed it; it is decoded here only when they did not (then the decoder's 400 names the
    problem)."""
    _check_media_type()
    body = parsed_body(_NOT_PARSED)
    return decode_json(request.get_data(cache=False)) if body is _NOT_PARSED else body


def _known_service(service_id: str) -> None:
    if service_id not in (SERVICE_ID, DISPATCH_SERVICE_ID):
        raise UnknownServiceError(f"no CDS service with this id; the services are {SERVICE_ID}, {DISPATCH_SERVICE_ID}")


@blueprint.get("/cds-services")
def discovery() -> Response:
    return _json(discovery_document())


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    _known_service(service_id)
    return _answer(order_sign_request(_decoded_json_body()))


@blueprint.post(f"/cds-services/{DISPATCH_SERVICE_ID}")
def call_dispatch_service() -> Response:
    """order-dispatch: the dispatched orders decided by the order-sign use case (``order_dispatch``)."""
    return _answer(order_dispatch_request(_decoded_json_body(), current_app.extensions[SERVICE_KEY]))


def _answer(hook_request) -> Response:
    """Decide a hook request, keep what DTR needs of it, audit it, then answer: one path for both hooks."""
    outcome = handle_order_sign(hook_request, service=current_app.extensions[SERVICE_KEY],
                                as_of=current_app.config[AS_OF_CONFIG_KEY])
    body = outcome.response.as_json()
    keep_decisions(body, outcome.decisions, hook_request.context.patient_id)  # before the EHR can launch DTR
    audit.hook_answered(hook_request.hook_instance, outcome, body)
    return _json(body)


@blueprint.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    _known_service(service_id)
    items = parse_feedback(_decoded_json_body(), keep_comments=current_settings().audit_feedback_comments)
    audit.feedback_received(current_app.extensions[FEEDBACK_LOG_KEY].record(service_id, items))  # new items only
    return _json({})


@blueprint.get("/healthz")
def healthz() -> Response:
    return _json({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    state = audit.readiness()
    return _json(state, 200 if state["status"] == "ready" else 503)
