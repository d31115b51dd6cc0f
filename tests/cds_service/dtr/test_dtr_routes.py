"""The $questionnaire-package endpoints over HTTP, as a DTR client calls them (Flask test client)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from dtr_fixtures import (
    ASSERTION,
    COVERAGE,
    context_param,
    form_and_draft,
    order_param,
    parameters,
    stored_context,
    with_answers,
)
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from cds_service import create_app
from cds_service.dtr.context import DecisionContext
from cds_service.dtr.routes import CONTEXT_STORE_KEY
from cds_service.settings import CONFIG_KEY
from tests.cds_service.conftest import protocol_settings
from tests.dtr_checks import check_package, check_response, outcome_problems

TYPE_LEVEL = "/fhir/Questionnaire/$questionnaire-package"
SYSTEM_LEVEL = "/fhir/$questionnaire-package"


class Store:
    def __init__(self, *contexts: DecisionContext):
        self.contexts = {c.assertion_id: c for c in contexts}

    def find(self, assertion_id: str) -> DecisionContext | None:
        return self.contexts.get(assertion_id)


@pytest.fixture
def dtr_app():
    app = create_app(protocol_settings(public_base_url="https://payer.example"))
    app.extensions[CONTEXT_STORE_KEY] = Store(stored_context(datetime.now(UTC) + timedelta(days=1)))
    return app


def post(app, path: str, body, content_type: str = "application/fhir+json"):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return app.test_client().post(path, data=data, content_type=content_type)


@pytest.mark.parametrize("path", [TYPE_LEVEL, SYSTEM_LEVEL])
def test_both_paths_answer_a_package_as_fhir_json(dtr_app, path):
    response = post(dtr_app, path, parameters(context_param(), order_param()))
    assert response.status_code == 200 and response.mimetype == "application/fhir+json"
    check_package(response.get_json())
    (entry,) = response.get_json()["parameter"]
    form, draft = form_and_draft(entry["resource"])
    assert form["url"] == "https://payer.example/fhir/Questionnaire/cp-phar-481"
    assert draft["identifier"]["value"] == ASSERTION


def test_plain_json_is_accepted_and_the_host_is_the_base_without_a_public_url(dtr_app):
    dtr_app.config[CONFIG_KEY] = replace(dtr_app.config[CONFIG_KEY], public_base_url=None)
    response = post(dtr_app, TYPE_LEVEL, parameters(order_param()), "application/json")
    form = response.get_json()["parameter"][0]["resource"]["entry"][0]["resource"]
    assert form["url"] == "http://localhost/fhir/Questionnaire/cp-phar-481"


@pytest.mark.parametrize("body, content_type, status, text", [
    (parameters(context_param("unknown")), "application/fhir+json", 404, "no coverage decision is known"),
    (b"{not json", "application/fhir+json", 400, "not valid JSON"),
    (parameters(order_param()), "text/plain", 415, "Content-Type"),
    ({"resourceType": "Parameters", "parameter": [order_param()]}, "application/json", 400, "coverage"),
])
def test_errors_are_operation_outcomes_with_details_text(dtr_app, body, content_type, status, text):
    response = post(dtr_app, TYPE_LEVEL, body, content_type)
    assert response.status_code == status and response.mimetype == "application/fhir+json"
    assert outcome_problems(response.get_json()) == []
    assert text in response.get_json()["issue"][0]["details"]["text"]


def test_get_is_not_allowed(dtr_app):
    assert dtr_app.test_client().get(TYPE_LEVEL).status_code == 405


def test_without_a_context_store_every_context_is_unknown():
    app = create_app(protocol_settings())
    response = post(app, TYPE_LEVEL, parameters(context_param()))
    assert response.status_code == 404


def test_refused_while_client_authentication_is_on(dtr_app):
    dtr_app.config[CONFIG_KEY] = replace(dtr_app.config[CONFIG_KEY], auth_disabled=False)
    response = post(dtr_app, TYPE_LEVEL, parameters(context_param()))
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert "SMART Backend Services" in response.get_json()["issue"][0]["details"]["text"]
    assert COVERAGE["id"] not in response.get_data(as_text=True)


def test_package_then_evaluate_round_trip(dtr_app):
    package = post(dtr_app, TYPE_LEVEL, parameters(context_param())).get_json()
    form, draft = (e["resource"] for e in package["parameter"][0]["resource"]["entry"])
    done = with_answers(draft, form, {"I.A.4.b.met": True, "I.A.4.b.evidence": "PD by IMWG on 2026-11-02"})
    check_response(done, form)
    body = {"resourceType": "Parameters", "parameter": [context_param(),
                                                         {"name": "questionnaireResponse", "resource": done}]}
    response = post(dtr_app, "/fhir/QuestionnaireResponse/$evaluate", body)
    assert response.status_code == 200, response.get_json()
    out = response.get_json()
    assert {"name": "verdict", "valueCode": "meets-policy"} in out["parameter"]
    extension = out["parameter"][0]["extension"][0]
    assert {"url": "coverage-assertion-id", "valueString": ASSERTION} in extension["extension"]


@pytest.mark.parametrize("edit, status, text", [
    (lambda body: body["parameter"].pop(0), 400, "context parameter"),
    (lambda body: body.update(parameter=[context_param("other"), body["parameter"][1]])
     or body["parameter"][1]["resource"].pop("identifier"), 404, "no coverage decision"),
    (lambda body: body["parameter"][1]["resource"].update(identifier={"value": "other"}), 400, "another context"),
    (lambda body: body["parameter"][1]["resource"].update(questionnaire="https://x.example/Questionnaire/q"), 422,
     "does not answer a form"),
    (lambda body: body["parameter"][1].pop("resource"), 400, "questionnaireResponse"),
])
def test_evaluate_refusals(dtr_app, edit, status, text):
    package = post(dtr_app, TYPE_LEVEL, parameters(context_param())).get_json()
    form, draft = (e["resource"] for e in package["parameter"][0]["resource"]["entry"])
    body = {"resourceType": "Parameters", "parameter": [
        context_param(), {"name": "questionnaireResponse", "resource": with_answers(draft, form, {})}]}
    edit(body)
    response = post(dtr_app, "/fhir/QuestionnaireResponse/$evaluate", body)
    assert response.status_code == status
    assert text in response.get_json()["issue"][0]["details"]["text"]


def test_every_canonical_resolves_and_metadata_lists_the_operation(dtr_app):
    client = dtr_app.test_client()
    statement = client.get("/fhir/metadata").get_json()
    CapabilityStatement.model_validate(statement)
    (resource,) = statement["rest"][0]["resource"]
    assert resource["operation"][0]["name"] == "questionnaire-package"
    package = post(dtr_app, TYPE_LEVEL, parameters(order_param())).get_json()
    form = package["parameter"][0]["resource"]["entry"][0]["resource"]
    read = client.get(form["url"].removeprefix("https://payer.example"))
    assert read.status_code == 200 and read.get_json() == form
    missing = client.get("/fhir/Questionnaire/nope")
    assert missing.status_code == 404 and missing.get_json()["issue"][0]["details"]["text"]


def test_forms_and_metadata_are_served_while_client_authentication_is_on(dtr_app):
    dtr_app.config[CONFIG_KEY] = replace(dtr_app.config[CONFIG_KEY], auth_disabled=False)
    client = dtr_app.test_client()
    assert client.get("/fhir/metadata").status_code == 200
    assert client.get("/fhir/Questionnaire/cp-phar-481").status_code == 200
    assert post(dtr_app, "/fhir/QuestionnaireResponse/$evaluate", {}).status_code == 401


def test_log_questionnaire_errors_is_acknowledged(dtr_app):
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "Questionnaire", "valueCanonical": "https://payer.example/fhir/Questionnaire/cp-phar-481"},
        {"name": "OperationOutcome", "resource": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "processing", "diagnostics": "enableWhenExpression failed"}]}}]}
    response = post(dtr_app, "/fhir/Questionnaire/$log-questionnaire-errors", body)
    assert response.status_code == 200 and outcome_problems(response.get_json()) == []
