"""GET /cds-services: one CRD order-sign service whose prefetch comes from the data requirements."""

from __future__ import annotations

import re

from cds_service.discovery import discovery_document
from fhir_mappings.data_requirements import data_requirements, prefetch_templates
from tests.conftest import load_json
from tests.response_checks import check_discovery, discovery_problems


def test_discovery_lists_the_order_sign_service(client):
    response = client.get("/cds-services")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    check_discovery(document)
    service, dispatch = document["services"]  # order-dispatch: tests/cds_service/test_order_dispatch_crd.py
    assert dispatch["hook"] == "order-dispatch"
    assert service["hook"] == "order-sign"
    assert service["id"] == "car-t-coverage"
    assert service["title"] and service["description"]


def test_prefetch_is_the_data_requirements_declaration(client):
    service = client.get("/cds-services").get_json()["services"][0]

    assert service["prefetch"] == prefetch_templates()
    assert list(service["prefetch"]) == [req.key for req in data_requirements()]
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert service["prefetch"]["user"] == "{{context.userId}}"
    tokens = set(re.findall(r"\{\{[^}]*\}\}", "".join(service["prefetch"].values())))
    assert tokens <= {"{{context.patientId}}", "{{context.userId}}", "{{context.encounterId}}", "{{userPractitionerId}}"}


def test_crd_extension_declares_version_and_configuration_options(client):
    extension = client.get("/cds-services").get_json()["services"][0]["extension"]

    assert extension["davinci-crd.version"] == ["2.2"]
    options = {option["code"]: option for option in extension["davinci-crd.configuration-options"]}
    assert options["coverage-info"]["type"] == "boolean" and options["coverage-info"]["default"] is True
    assert options["max-cards"]["type"] == "integer" and options["max-cards"]["default"] == 10
    for option in options.values():
        assert set(option) == {"code", "type", "name", "description", "default"}


def test_discovery_is_built_once():
    assert discovery_document() is discovery_document()


def test_discovery_needs_no_request_body_or_content_type(client):
    response = client.get("/cds-services", headers={"Accept": "*/*"})
    assert response.status_code == 200


def test_discovery_checker_flags_only_the_missing_crd_2_2_version_in_inferno_mock_discovery():
    # Inferno's mock server speaks CRD 2.0.1, which had no davinci-crd.version extension.
    problems = discovery_problems(load_json("examples/inferno-mock-discovery.json"))

    assert problems and all("davinci-crd.version required (CRD dev-1)" in problem for problem in problems)


def test_discovery_checker_rejects_fhirpath_tokens_of_crd_2_2_example():
    problems = discovery_problems(load_json("examples/crd221-discovery.json"))
    assert any("token not allowed in CDS Hooks 2.0" in problem for problem in problems)


def test_discovery_checker_rejects_missing_crd_version_and_bad_option_default():
    document = load_json("examples/inferno-mock-discovery.json")
    service = document["services"][0]
    service["extension"] = {"davinci-crd.configuration-options": [
        {"code": "coverage-info", "type": "boolean", "name": "A", "description": "B", "default": 1}]}

    problems = discovery_problems(document)

    assert any("CRD dev-1" in problem for problem in problems)
    assert any("CRD dev-4" in problem for problem in problems)
