"""CRD resp-30 (qualifiers in the extension), the doc-needed/info-needed notes, resp-1/resp-2 (indicators) and
dev-5 (an option per card type: the External Reference and Instructions cards Inferno's required-card group
looks for), on the sandbox's recorded requests and hand-built decisions.
"""

from __future__ import annotations

from datetime import date

import pytest

from cds_service import create_app
from cds_service.discovery import discovery_document
from cds_service.response.coverage_information import coverage_information_actions, coverage_information_extension
from policies.decision import Verdict
from policies.loader import shipped_policies
from sandbox.catalog import SANDBOX_PAYER_IDENTIFIER
from tests.cds_service import decision_examples as ex
from tests.cds_service.conftest import protocol_settings
from tests.cds_service.test_order_sign_end_to_end import (
    AS_OF,
    COVERAGE_INFORMATION_URL,
    DECISION,
    abecma_meets,
    configured,
    sandbox_hook,
    signed,
)
from tests.crd_checks import extension_problems

HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
DETAIL_CODES = "http://terminology.hl7.org/CodeSystem/crd-coverage-detail"
CART = "MedicationRequest/tocilizumab-within-allowance-cart"
TOCI = "MedicationRequest/tocilizumab-within-allowance-toci"
POLICY_URL = "https://www.example-health.com/policies/cp-phar-481.pdf"


@pytest.fixture(scope="module")
def client():
    settings = protocol_settings(allow_loopback_fhir=True, payer_identifiers=(SANDBOX_PAYER_IDENTIFIER,),
                                 policy_links={"CP.PHAR.481": POLICY_URL})
    return create_app(settings, as_of=AS_OF).test_client()


def extension_of(body: dict, order: str) -> list[dict]:
    (action,) = [a for a in body["systemActions"] if f"{a['resource']['resourceType']}/{a['resource']['id']}" == order]
    (extension,) = [e for e in action["resource"]["extension"] if e["url"] == COVERAGE_INFORMATION_URL]
    return extension["extension"]


def details(parts: list[dict]) -> list[tuple[str, str, dict]]:
    """(category, code, value part) of each ``detail``."""
    out = []
    for part in parts:
        if part["url"] == "detail":
            sub = {p["url"]: p for p in part["extension"]}
            (coding,) = sub["code"]["valueCodeableConcept"]["coding"]
            assert coding["system"] == DETAIL_CODES
            out.append((sub["category"]["valueCode"], coding["code"], sub["value"]))
    return out


def values(parts: list[dict], url: str) -> list:
    return [next(v for k, v in p.items() if k.startswith("value")) for p in parts if p["url"] == url]


# --- resp-30: the qualifiers travel in the extension ---------------------------------------------------


def test_a_car_t_assertion_carries_the_approval_period_one_dose_pdac_review_and_the_policys_hcpcs(client):
    body = signed(client, sandbox_hook("tocilizumab-within-allowance-prefetch"))
    parts = extension_of(body, CART)

    found = details(parts)
    assert ("cat-limitation", "allowed-period", {"url": "value", "valuePeriod": {
        "start": "2026-11-24", "end": "2027-02-24"}}) in found  # 3 months from the assertion date
    assert ("cat-limitation", "allowed-quantity", {"url": "value", "valueQuantity": {
        "value": 1, "unit": "dose", "system": "http://unitsofmeasure.org", "code": "{dose}"}}) in found
    assert any(code == "instructions" and "PDAC" in value["valueString"] for _, code, value in found)
    policy = next(p for p in shipped_policies() if p.id == "CP.PHAR.481")
    assert values(parts, "billingCode") == [{"system": HCPCS, "code": c} for c in policy.approval.hcpcs]
    assert policy.approval.hcpcs == ("Q2055",)  # the code comes from the policy file


def test_a_co_signed_tocilizumab_assertion_depends_on_the_car_t_order_and_carries_its_dose_limits(client):
    body = signed(client, sandbox_hook("tocilizumab-within-allowance-prefetch"))
    parts = extension_of(body, TOCI)

    assert values(parts, "dependency") == [{"reference": CART}]
    quantities = [value["valueQuantity"] for _, code, value in details(parts) if code == "allowed-quantity"]
    assert {"value": 4, "unit": "dose", "system": "http://unitsofmeasure.org", "code": "{dose}"} in quantities
    assert {"value": 800, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"} in quantities
    assert values(parts, "billingCode") == []  # Q2055 bills the CAR-T product, not tocilizumab
    assert values(extension_of(body, CART), "dependency") == []


def test_a_policy_without_hcpcs_gives_no_billing_code():
    (action,) = coverage_information_actions([ex.kite_does_not_meet()], ex.draft_orders(), date(2026, 11, 24))
    kite_meets = ex.kite(Verdict.MEETS_POLICY, ex.abecma_meets().criteria)
    (met,) = coverage_information_actions([kite_meets], ex.draft_orders(), date(2026, 11, 24))
    assert "billingCode" not in str(met.as_json()) and "detail" in str(met.as_json())
    assert "detail" not in str(action.as_json())  # no qualifiers on a not-covered assertion


# --- doc-needed vs info-needed --------------------------------------------------------------------------


def test_missing_documentation_is_doc_needed_clinical_with_pa_and_info_needed_oth_names_what_is_missing():
    (action,) = coverage_information_actions([ex.abecma_incomplete()], ex.draft_orders(), date(2026, 11, 24))
    parts = action.as_json()["resource"]["extension"][-1]["extension"]

    assert values(parts, "doc-needed") == ["clinical"] and values(parts, "doc-purpose") == ["withpa"]
    assert values(parts, "info-needed") == ["OTH"]
    instructions = [value["valueString"] for _, code, value in details(parts) if code == "instructions"]
    assert any("I.A.4" in text and "I.A.5" in text for text in instructions)  # OTH has a detail saying what


def test_questionnaires_are_sent_only_with_doc_needed():
    form = "http://example.org/Questionnaire/car-t|1"
    with_doc = coverage_information_extension(ex.abecma_incomplete(), Verdict.DOCUMENTATION_INCOMPLETE,
                                              date(2026, 11, 24), "id", questionnaires=(form,))
    not_covered = coverage_information_extension(ex.kite_does_not_meet(), Verdict.DOES_NOT_MEET,
                                                 date(2026, 11, 24), "id", questionnaires=(form,))
    assert {"url": "questionnaire", "valueCanonical": form} in with_doc["extension"]
    assert all(p["url"] != "questionnaire" for p in not_covered["extension"])  # q1


# --- resp-1/resp-2: indicators ------------------------------------------------------------------------


def test_a_denial_is_a_warning_and_routine_coverage_information_is_info(client):
    body = signed(client, sandbox_hook("tocilizumab-beyond-allowance-prefetch"))
    indicators = {c["extension"][DECISION]["verdict"]: c["indicator"] for c in body["cards"] if DECISION in c["extension"]}
    assert indicators == {"does-not-meet": "warning", "meets-policy": "info"}
    assert all(c["indicator"] != "critical" for c in body["cards"])


# --- dev-5: External Reference and Instructions cards, each under its own option -------------------------


def test_the_policy_document_is_an_external_reference_card_under_its_own_option(client):
    body = signed(client, abecma_meets())
    (card,) = [c for c in body["cards"] if c["source"]["topic"]["code"] == "appropriate-use"]
    (link,) = card["links"]
    assert link["url"] == POLICY_URL and link["type"] == "absolute"
    assert "suggestions" not in card and card["detail"]  # resp-18/19/20
    off = signed(client, configured(abecma_meets(), **{"appropriate-use": False}))
    assert all(c["source"]["topic"]["code"] != "appropriate-use" for c in off["cards"])


def test_the_approval_limits_are_an_instructions_card_only_when_asked(client):
    assert all(c["source"]["topic"]["code"] != "limits" for c in signed(client, abecma_meets())["cards"])

    body = signed(client, configured(sandbox_hook("tocilizumab-beyond-allowance-prefetch"), limits=True))

    (card,) = [c for c in body["cards"] if c["source"]["topic"]["code"] == "limits"]
    assert "links" not in card and "suggestions" not in card  # Inferno's Instructions card
    assert "3 months" in card["detail"] and "Q2055" in card["detail"]
    # the CAR-T order only, not the denied tocilizumab order
    assert card["extension"]["davinci-crd.associated-resource"] == [
        {"reference": "MedicationRequest/tocilizumab-beyond-allowance-cart"}]


def test_discovery_declares_an_option_for_each_card_type():
    options = {o["code"]: o for o in discovery_document()["services"][0]["extension"]["davinci-crd.configuration-options"]}
    assert options["appropriate-use"]["default"] is True and options["limits"]["default"] is False
    assert {"guideline", "appropriate-use", "limits", "coverage-info"} <= set(options)


def test_max_cards_counts_every_card_type(client):
    body = signed(client, configured(abecma_meets(), limits=True, **{"max-cards": 2}))
    assert [c["source"]["topic"]["code"] for c in body["cards"]] == ["guideline", "appropriate-use"]


def test_the_crd_checks_catch_a_malformed_detail_and_oth_without_detail():
    (action,) = coverage_information_actions([ex.abecma_incomplete()], ex.draft_orders(), date(2026, 11, 24))
    extension = action.as_json()["resource"]["extension"][-1]
    assert extension_problems(extension) == []
    detail = next(p for p in extension["extension"] if p["url"] == "detail")
    detail["extension"][0]["valueCode"] = "cat-whatever"
    detail["extension"].append({"url": "value", "valueString": "twice"})
    problems = extension_problems(extension)
    assert "detail.category: not cat-limitation, cat-decisional or cat-other" in problems
    assert "detail.value: occurs 2 times" in problems
    extension["extension"] = [p for p in extension["extension"] if p["url"] != "detail"]
    assert "info-needed OTH needs at least one detail saying what is needed" in extension_problems(extension)
