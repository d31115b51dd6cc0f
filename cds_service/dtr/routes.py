"""HTTP for the DTR payer operations under the FHIR base ``/fhir``: parse, call the pure function, serialise.

``POST /fhir/Questionnaire/$questionnaire-package``  (type level, as the OperationDefinition says)
``POST /fhir/$questionnaire-package``                (system-level alias: DTR's specification page uses it)
``POST /fhir/QuestionnaireResponse/$evaluate``       re-evaluation of a completed form (ours, not DTR's)
``POST /fhir/Questionnaire/$log-questionnaire-errors`` a DTR app's report of problems with a form
``GET /fhir/Questionnaire/<id>``                     a generated form, so that every canonical resolves
``GET /fhir/metadata``                               CapabilityStatement of what is served here

Bodies are ``application/fhir+json`` (``application/json`` accepted); answers are FHIR JSON, errors a
4xx ``OperationOutcome`` whose ``issue[0].details.text`` a DTR app shows.

Authentication: SMART Backend Services (``cds_service.dtr.smart``): every operation (POST) needs an
access token from ``POST /fhir/auth/token``, refused with 401 and an OperationOutcome otherwise, unless
client authentication is switched off for development (``CART_CDS_AUTH_DISABLED=true``). The forms and
the CapabilityStatement (GET) are policy content with no member data and are always served.

Canonicals are ``[base]/Questionnaire/<slug>`` with ``[base]`` = ``CART_CDS_PUBLIC_BASE_URL`` + ``/fhir``
(the request's host when unset). The decisions behind ``context`` come from the store the app keeps
under ``CONTEXT_STORE_KEY`` (``find(assertion_id) -> DecisionContext | None``); with none installed,
every context is unknown (404).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol

import orjson
from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import MethodNotAllowed

from cds_service.dtr.context import DecisionContext
from cds_service.dtr.evaluate import evaluate_operation
from cds_service.dtr.log_errors import log_report, parse_report
from cds_service.dtr.package import OperationError, questionnaire_package
from cds_service.dtr.questionnaire import FHIR_BASE_PATH, questionnaires
from cds_service.dtr.smart import authorized
from cds_service.settings import current_settings
from fhir_mappings import Coded
from policies import shipped_policies

CONTEXT_STORE_KEY = "cart_cds.dtr_contexts"
FHIR_JSON = "application/fhir+json"
DTR_OPERATIONS = "http://hl7.org/fhir/us/davinci-dtr/OperationDefinition/"

blueprint = Blueprint("dtr", __name__, url_prefix=FHIR_BASE_PATH)


class ContextStore(Protocol):
    def find(self, assertion_id: str) -> DecisionContext | None: ...


@lru_cache(maxsize=8)
def _forms(base_url: str) -> dict[str, dict]:
    return questionnaires(shipped_policies(), base_url)


def fhir_base_url() -> str:
    root = current_settings().public_base_url or request.host_url
    return root.rstrip("/") + FHIR_BASE_PATH


def _fhir(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=FHIR_JSON)


@blueprint.before_request
def _authenticated() -> Response | None:
    """Every operation (POST) needs a SMART Backend Services access token (``cds_service.dtr.smart``),
    unless client authentication is off for development."""
    if request.method != "POST" or current_settings().auth_disabled or authorized():
        return None
    response = _fhir(OperationError(401, "an access token is required: SMART Backend Services, token endpoint "
                                         f"in {FHIR_BASE_PATH}/.well-known/smart-configuration").outcome(), 401)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


@blueprint.errorhandler(OperationError)
def _refused(error: OperationError) -> Response:
    return _fhir(error.outcome(), error.status)


def _body() -> object:
    mimetype = request.mimetype
    if mimetype not in (FHIR_JSON, "application/json"):
        raise OperationError(415, "Content-Type must be application/fhir+json or application/json")
    try:
        return orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError:
        raise OperationError(400, "the request body is not valid JSON", "Parameters") from None


def _find_context():
    store: ContextStore | None = current_app.extensions.get(CONTEXT_STORE_KEY)
    return store.find if store is not None else (lambda _: None)


@blueprint.post("/Questionnaire/$questionnaire-package")
@blueprint.post("/$questionnaire-package")
def questionnaire_package_operation() -> Response:
    extra_codes = {policy: tuple(Coded(system, code) for system, code in codes)
                   for policy, codes in current_settings().extra_product_codes.items()}
    out = questionnaire_package(
        _body(), policies=shipped_policies(), forms=_forms(fhir_base_url()), find_context=_find_context(),
        now=datetime.now(UTC), extra_codes=extra_codes)
    return _fhir(out)


@blueprint.post("/QuestionnaireResponse/$evaluate")
def evaluate_questionnaire_response() -> Response:
    out = evaluate_operation(_body(), policies=shipped_policies(), forms=_forms(fhir_base_url()),
                             find_context=_find_context(), now=datetime.now(UTC))
    return _fhir(out)


@blueprint.post("/Questionnaire/$log-questionnaire-errors")
def log_questionnaire_errors() -> Response:
    return _fhir(log_report(parse_report(_body(), _forms(fhir_base_url()))))


@blueprint.get("/Questionnaire/<form_id>")
def read_questionnaire(form_id: str) -> Response:
    if form_id.startswith("$"):  # an operation name, not an id: operations are POST only
        raise MethodNotAllowed(valid_methods=["POST"])
    for form in _forms(fhir_base_url()).values():
        if form["id"] == form_id:
            return _fhir(form)
    raise OperationError(404, "no Questionnaire with this id; the forms are listed in the CapabilityStatement at "
                              f"{FHIR_BASE_PATH}/metadata", "Questionnaire.id")


@blueprint.get("/metadata")
def metadata() -> Response:
    return _fhir(capability_statement(fhir_base_url(), _forms(fhir_base_url()).values()))


def capability_statement(base_url: str, forms) -> dict:
    """What this FHIR base serves, and no more: it does not claim the DTR payer-service
    CapabilityStatement, whose $next-question and ValueSet/$expand are not offered."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": max(form.get("effectivePeriod", {}).get("start", "2026") for form in forms),
        "kind": "instance",
        "implementation": {"description": "cart-cds DTR payer operations", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server", "resource": [{
            "type": "Questionnaire",
            "interaction": [{"code": "read"}],
            "operation": [{"name": name, "definition": f"{DTR_OPERATIONS}{name}"}
                          for name in ("questionnaire-package", "log-questionnaire-errors")],
        }]}],
    }
