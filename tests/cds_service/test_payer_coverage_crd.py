"""CRD hook-13, resp-4, resp-43/44/45: which Coverage the endpoint assesses, whose payer it is, and what it
answers when it cannot tell.

Requests are the sandbox's recorded Abecma hook (full prefetch, one Coverage of the sandbox payer) with the
member's Coverage changed the way real EHRs send it: a second, Medicare, Coverage ranked first; a payor
given only as a reference to an Organization; no Coverage at all; a failed Coverage query.
"""

from __future__ import annotations

import copy
import logging

import pytest
import responses

from cds_service import create_app
from cds_service.settings import Settings, SettingsError, start_check
from sandbox.catalog import SANDBOX_PAYER_IDENTIFIER
from tests.cds_service.conftest import HOOK_URL, protocol_settings
from tests.cds_service.test_order_sign_end_to_end import (
    AS_OF,
    DECISION,
    SANDBOX_FHIR,
    abecma_meets,
    card_for,
    coverage_information,
    prefetch_resources,
    signed,
)

ORDER = "MedicationRequest/tocilizumab-within-allowance-cart"
SANDBOX_COVERAGE = "Coverage/tocilizumab-within-allowance-cov"
CMS = ("http://hl7.org/fhir/sid/us-npi", "0000000000")  # another payer's identifier (an NPI-shaped id)
MEDICARE = {
    "resourceType": "Coverage", "id": "medicare-part-b", "status": "active", "order": 1,
    "beneficiary": {"reference": "Patient/tocilizumab-within-allowance-pt"},
    "payor": [{"identifier": {"system": CMS[0], "value": CMS[1]}, "display": "Medicare Part B"}],
}


def client_for(**values):
    settings = protocol_settings(allow_loopback_fhir=True, payer_identifiers=(SANDBOX_PAYER_IDENTIFIER,), **values)
    return create_app(settings, as_of=AS_OF).test_client()


@pytest.fixture(scope="module")
def client():
    return client_for()


def sandbox_coverage(hook: dict) -> dict:
    (coverage,) = prefetch_resources(hook, "coverage")
    return coverage


def with_coverages(hook: dict, *coverages: dict) -> dict:
    hook["prefetch"]["coverage"]["entry"] = [{"fullUrl": f"{SANDBOX_FHIR}/Coverage/{c['id']}", "resource": c}
                                             for c in coverages]
    hook["prefetch"]["coverage"]["total"] = len(coverages)
    return hook


def refused(client, hook: dict) -> str:
    response = client.post(HOOK_URL, json=hook)
    assert response.status_code == 400, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "error"
    return outcome["issue"][0]["diagnostics"]


# --- hook-13: the Coverage this endpoint assesses -------------------------------------------------------


def test_the_coverage_of_a_served_payer_is_assessed(client):
    body = signed(client, abecma_meets())

    assert coverage_information(body, ORDER)["coverage"] == SANDBOX_COVERAGE


def test_another_payers_coverage_ranked_first_is_not_assessed_when_one_is_for_a_served_payer(client):
    """hook-13: a Medicare Coverage with order 1 next to the served payer's: the served one is assessed."""
    hook = abecma_meets()
    ours = sandbox_coverage(hook) | {"order": 2}
    body = signed(client, with_coverages(hook, MEDICARE, ours))

    assert coverage_information(body, ORDER)["coverage"] == SANDBOX_COVERAGE
    assert coverage_information(body, ORDER)["covered"] == "covered"  # the sandbox plan's line of business


def test_only_another_payers_coverage_is_a_400_naming_the_payer_problem(client):
    hook = with_coverages(abecma_meets(), MEDICARE)

    assert "not a payer this CRD endpoint serves" in refused(client, hook)


def test_no_active_coverage_is_a_400(client):
    hook = abecma_meets()
    inactive = sandbox_coverage(hook) | {"status": "cancelled"}

    assert "no active Coverage" in refused(client, with_coverages(hook, inactive))
    assert "no active Coverage" in refused(client, with_coverages(abecma_meets()))


def test_a_coverage_without_any_payer_identifier_is_a_400(client):
    hook = abecma_meets()
    anonymous = sandbox_coverage(hook) | {"payor": [{"display": "Sandbox Health Plan"}]}

    assert "no payer identifier" in refused(client, with_coverages(hook, anonymous))


def test_two_coverages_of_served_payers_that_order_does_not_rank_is_a_400(client):
    hook = abecma_meets()
    first = sandbox_coverage(hook)
    second = copy.deepcopy(first) | {"id": "second-plan"}

    assert "several active Coverages" in refused(client, with_coverages(hook, first, second))


def test_order_ranks_two_coverages_of_served_payers(client):
    hook = abecma_meets()
    first = sandbox_coverage(hook) | {"order": 1}
    second = copy.deepcopy(first) | {"id": "second-plan", "order": 2}

    body = signed(client, with_coverages(hook, second, first))

    assert coverage_information(body, ORDER)["coverage"] == SANDBOX_COVERAGE


def test_the_payer_is_identified_by_the_organization_the_payor_references(client, http_mock):
    """A payor given only as a reference: the Organization is read from fhirServer and its identifier
    matched; its name becomes the card's source label (resp-4)."""
    hook = abecma_meets()
    coverage = sandbox_coverage(hook)
    coverage["payor"] = [{"reference": "Organization/sandbox-payer"}]
    system, value = SANDBOX_PAYER_IDENTIFIER
    http_mock.add(responses.GET, f"{SANDBOX_FHIR}/Organization/sandbox-payer", json={
        "resourceType": "Organization", "id": "sandbox-payer", "name": "Sandbox Health Plan of Ohio",
        "identifier": [{"system": system, "value": value}]})

    body = signed(client, hook)

    assert coverage_information(body, ORDER)["coverage"] == SANDBOX_COVERAGE
    assert card_for(body, ORDER)["source"]["label"] == "Sandbox Health Plan of Ohio"


def test_a_referenced_organization_of_another_payer_is_a_400(client, http_mock):
    hook = abecma_meets()
    sandbox_coverage(hook)["payor"] = [{"reference": "Organization/cms"}]
    http_mock.add(responses.GET, f"{SANDBOX_FHIR}/Organization/cms", json={
        "resourceType": "Organization", "id": "cms", "name": "CMS",
        "identifier": [{"system": CMS[0], "value": CMS[1]}]})

    assert "not a payer this CRD endpoint serves" in refused(client, hook)


# --- resp-4: the card source is the payer's name ------------------------------------------------------


def test_the_source_label_is_the_payer_organization_name_when_the_record_holds_it(client):
    hook = abecma_meets()
    coverage = sandbox_coverage(hook)
    system, value = SANDBOX_PAYER_IDENTIFIER
    organization = {"resourceType": "Organization", "id": "tocilizumab-within-allowance-payer",
                    "name": "Sandbox Health Plan", "identifier": [{"system": system, "value": value}]}
    hook["prefetch"]["coverage"]["entry"].append({"fullUrl": f"{SANDBOX_FHIR}/Organization/{organization['id']}",
                                                  "resource": organization, "search": {"mode": "include"}})
    coverage["payor"] = [{"reference": "Organization/tocilizumab-within-allowance-payer"}]

    body = signed(client_for(payer_name="Configured Plan Name"), hook)

    assert card_for(body, ORDER)["source"]["label"] == "Sandbox Health Plan"


def test_the_configured_payer_name_is_the_label_when_the_organization_is_not_in_the_record():
    body = signed(client_for(payer_name="Configured Plan Name"), abecma_meets())

    assert card_for(body, ORDER)["source"]["label"] == "Configured Plan Name"


# --- resp-43: a failed Coverage query is technical, never "no coverage" ---------------------------------


def test_a_failed_coverage_query_is_indeterminate_and_technical_not_coverage_not_found(client, http_mock):
    hook = abecma_meets()
    del hook["prefetch"]["coverage"]
    http_mock.add(responses.GET, f"{SANDBOX_FHIR}/Coverage", status=503, json={
        "resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]})

    body = signed(client, hook, coverage=False)

    card = card_for(body, ORDER)
    assert card["extension"][DECISION]["verdict"] == "indeterminate"
    assert "Coverage not retrieved" in card["detail"] and "technical failure" in card["detail"]
    assert "systemActions" not in body  # the extension needs a Coverage (1..1): none can be named


# --- the setting and the start ------------------------------------------------------------------------


def test_payer_identifiers_parse_as_system_bar_value_pairs():
    settings = Settings.from_env({"CART_CDS_PAYER_IDENTIFIERS": " urn:oid:2.16.840.1.113883.6.300|12345 ,"
                                                               "https://payers.example.org/payer-id|SANDBOX-HP"})

    assert settings.payer_identifiers == (("urn:oid:2.16.840.1.113883.6.300", "12345"),
                                          ("https://payers.example.org/payer-id", "SANDBOX-HP"))
    with pytest.raises(SettingsError, match="CART_CDS_PAYER_IDENTIFIERS: each entry must look like system\\|value"):
        Settings.from_env({"CART_CDS_PAYER_IDENTIFIERS": "SANDBOX-HP"})


def test_a_production_start_without_payer_identifiers_is_refused_with_a_clear_message(monkeypatch):
    with pytest.raises(SettingsError, match="CART_CDS_PAYER_IDENTIFIERS is required in production"):
        start_check(Settings())
    for name, value in {"CART_CDS_AUTH_DISABLED": "true", "CART_CDS_DATABASE_URL": "sqlite://"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CART_CDS_PAYER_IDENTIFIERS", raising=False)
    with pytest.raises(SettingsError, match="PAYER_IDENTIFIERS"):
        create_app()


def test_a_development_start_without_payer_identifiers_warns_and_accepts_any_payer(caplog):
    with caplog.at_level(logging.WARNING, logger="cds_service.settings"):
        start_check(Settings(env="development"))
    assert "accepts a Coverage of any payer" in caplog.text

    any_payer = create_app(protocol_settings(env="development", allow_loopback_fhir=True), as_of=AS_OF).test_client()
    body = signed(any_payer, with_coverages(abecma_meets(), MEDICARE))
    assert coverage_information(body, ORDER)["coverage"] == "Coverage/medicare-part-b"


def test_the_sandbox_coverage_names_the_sandbox_payer():
    hook = abecma_meets()
    payor = sandbox_coverage(hook)["payor"][0]
    assert (payor["identifier"]["system"], payor["identifier"]["value"]) == SANDBOX_PAYER_IDENTIFIER


# --- resp-43: an external Medication that cannot be read does not drop the order ------------------------


@pytest.mark.parametrize("status", [404, 503])
def test_an_unreadable_external_medication_is_an_indeterminate_card_not_silence(client, http_mock, status):
    hook = abecma_meets()
    order = hook["context"]["draftOrders"]["entry"][0]["resource"]
    order.pop("medicationCodeableConcept")
    order["medicationReference"] = {"reference": "Medication/cart-product", "display": "Autologous cell therapy product"}
    http_mock.add(responses.GET, f"{SANDBOX_FHIR}/Medication/cart-product", status=status, json={
        "resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]})

    response = client.post(HOOK_URL, json=hook)

    assert response.status_code == 200
    (card,) = response.get_json()["cards"]
    assert card["indicator"] == "warning" and "could not be read" in card["summary"]
    assert card["summary"].startswith("Autologous cell therapy product")  # the order named in human terms (dev-24)
    assert card["extension"]["davinci-crd.associated-resource"] == [{"reference": ORDER}]
