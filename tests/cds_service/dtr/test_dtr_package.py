"""$questionnaire-package as a pure function, called as a DTR client calls it: inputs of the
OperationDefinition in, a Parameters of one collection Bundle per Questionnaire (Questionnaire first,
exactly one draft QuestionnaireResponse) out; bad input is a 4xx OperationOutcome with details.text."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from dtr_fixtures import (
    ASSERTION,
    BASE,
    COVERAGE,
    context_param,
    form_and_draft,
    order_param,
    parameters,
    stored_context,
)
from fhir.resources.R4B.parameters import Parameters

from cds_service.dtr.context import DecisionContext
from cds_service.dtr.package import OperationError, questionnaire_package
from cds_service.dtr.questionnaire import questionnaires
from fhir_mappings.facts import CellDose, Evidence, Observed
from policies.loader import shipped_policies
from tests.dtr_checks import check_package, outcome_problems, package_problems, walk_items
from tests.policies.policy_fakes import ABECMA_ORDER, NOT_SHOWN, FakeFacts

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
POLICIES = shipped_policies()
FORMS = questionnaires(POLICIES, BASE)
KITE_ORDER = {"resourceType": "MedicationRequest", "id": "kite-1", "status": "draft", "intent": "order",
              "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": "KITE-772 (anito-cel)"}}


def stored(facts: FakeFacts = FakeFacts(serum=NOT_SHOWN), **changes) -> DecisionContext:
    return replace(stored_context(NOW + timedelta(days=30), facts), **changes)


def package(body: dict, context: DecisionContext | None = None, **options) -> dict:
    contexts = {context.assertion_id: context} if context else {}
    out = questionnaire_package(body, policies=POLICIES, forms=FORMS, find_context=contexts.get, now=NOW, **options)
    Parameters.model_validate(out)
    check_package(out)
    return out


def refused(body: object, context: DecisionContext | None = None) -> OperationError:
    with pytest.raises(OperationError) as caught:
        package(body, context)
    outcome = caught.value.outcome()
    assert outcome["issue"][0]["details"]["text"] == caught.value.text and outcome_problems(outcome) == []
    return caught.value


def bundles(out: dict) -> list[dict]:
    return [p["resource"] for p in out["parameter"] if p["name"] == "PackageBundle"]


def outcome_texts(out: dict) -> list[str]:
    return [i["details"]["text"] for p in out["parameter"] if p["name"] == "outcome" for i in p["resource"]["issue"]]


def test_a_context_returns_its_policys_form_prefilled_from_the_hooks_decision():
    out = package(parameters(context_param(), order_param()), stored())
    (bundle,) = bundles(out)
    form, response = form_and_draft(bundle)
    assert form["url"] == f"{BASE}/Questionnaire/cp-phar-481"
    assert response["identifier"]["value"] == ASSERTION
    assert response["subject"] == {"reference": "Patient/p1"}
    qr_context = [e["valueReference"]["reference"] for e in response["extension"] if e["url"].endswith("qr-context")]
    assert qr_context == ["MedicationRequest/car-t-1"]
    answered = {item["linkId"] for item, _ in walk_items(response["item"]) if item.get("answer")}
    assert "I.A.1.met" in answered and "I.A.4.a.i.met" not in answered
    assert outcome_texts(out) == []


def test_context_alone_names_the_orders_it_was_decided_for():
    out = package(parameters(context_param()), stored())
    _, response = form_and_draft(bundles(out)[0])
    assert any(item.get("answer") for item, _ in walk_items(response["item"]))


def test_each_questionnaire_once_when_context_canonical_and_order_name_the_same_policy():
    canonical = {"name": "questionnaire", "valueCanonical": FORMS["CP.PHAR.481"]["url"]}
    out = package(parameters(canonical, context_param(), order_param()), stored())
    assert len(bundles(out)) == 1


def test_orders_alone_give_the_forms_of_the_policies_covering_them_blank_for_the_beneficiary():
    out = package(parameters(order_param(), order_param(KITE_ORDER)))
    forms = [form_and_draft(b) for b in bundles(out)]
    assert [f["id"] for f, _ in forms] == ["cp-phar-481", "cp-phar-769"]
    for _, response in forms:
        assert response["subject"] == {"reference": "Patient/p1"} and "item" not in response


def test_an_unknown_or_old_canonical_is_a_warning_beside_what_was_found():
    old = {"name": "questionnaire", "valueCanonical": FORMS["CP.PHAR.769"]["url"] + "|2025-01-00000000"}
    unknown = {"name": "questionnaire", "valueCanonical": f"{BASE}/Questionnaire/nope"}
    out = package(parameters(old, unknown, order_param()))
    assert [b["entry"][0]["resource"]["id"] for b in bundles(out)] == ["cp-phar-481"]
    texts = outcome_texts(out)
    assert len(texts) == 2 and f"current version is {FORMS['CP.PHAR.769']['version']}" in texts[0]


def test_nothing_to_return_is_404():
    unknown = {"name": "questionnaire", "valueCanonical": f"{BASE}/Questionnaire/nope"}
    assert refused(parameters(unknown)).status == 404


def test_the_output_name_can_be_the_dtr_2_2_spelling():
    out = package(parameters(order_param()), output_name="packagebundle")
    assert [p["name"] for p in out["parameter"]] == ["packagebundle"]


def test_a_contradicted_decision_still_packages_with_a_warning():
    dose = Observed(CellDose(600.0), (Evidence("MedicationRequest/car-t-1", "doseQuantity", "600", "10*6"),))
    out = package(parameters(context_param()), stored(FakeFacts(dose=dose)))
    assert len(bundles(out)) == 1
    assert any("I.A.10" in text and "contradicts" in text for text in outcome_texts(out))


def test_a_decision_under_another_policy_version_prefills_nothing():
    context = stored()
    old = replace(context, decisions=(replace(context.decisions[0], policy_version="2025-11"),))
    out = package(parameters(context_param()), old)
    _, response = form_and_draft(bundles(out)[0])
    assert "item" not in response and "not prefilled" in outcome_texts(out)[0]


@pytest.mark.parametrize("context, status, expression", [
    (None, 404, "context"),
    (stored(expires=NOW), 404, "context"),
    (stored(coverage="Coverage/other"), 400, "coverage"),
    (stored(orders=("MedicationRequest/other",)), 400, "order"),
])
def test_unknown_expired_or_mismatched_context_is_refused(context, status, expression):
    error = refused(parameters(context_param(), order_param()), context)
    assert (error.status, error.expression) == (status, expression)


@pytest.mark.parametrize("body, expression", [
    ([], "Parameters"),
    ({"resourceType": "Bundle"}, "Parameters"),
    ({"resourceType": "Parameters", "parameter": []}, "Parameters.parameter"),
    ({"resourceType": "Parameters", "parameter": [{"name": "order", "resource": ABECMA_ORDER}]}, "coverage"),
    (parameters(), "Parameters"),  # dtr-1: none of order, questionnaire, context
    (parameters({"name": "order", "resource": COVERAGE}), "Parameters.parameter[1].resource"),
    (parameters({"name": "order", "resource": {**ABECMA_ORDER, "id": ""}}), "Parameters.parameter[1].resource.id"),
    (parameters({"name": "context", "valueInteger": 3}), "Parameters.parameter[1]"),
    (parameters(context_param(), context_param()), "context"),
    (parameters(context_param(), {"name": "changedsince", "valueDateTime": "yesterday"}), "Parameters.parameter[2]"),
    (parameters({"name": "questionnaire"}), "Parameters.parameter[1]"),
    ({"resourceType": "Parameters", "parameter": [{"resource": COVERAGE}]}, "Parameters.parameter[0]"),
])
def test_malformed_input_is_400_naming_the_parameter(body, expression):
    error = refused(body, stored())
    assert (error.status, error.expression) == (400, expression)
    assert error.outcome()["issue"][0]["expression"] == [expression]


def test_without_context_the_beneficiary_must_be_a_patient():
    coverage = copy.deepcopy(COVERAGE)
    coverage["beneficiary"] = {"display": "J. Doe"}
    body = {"resourceType": "Parameters", "parameter": [{"name": "coverage", "resource": coverage}, order_param()]}
    assert refused(body).expression == "coverage.beneficiary"


def test_changedsince_and_unknown_parameters_are_accepted_and_the_package_returned():
    body = parameters(context_param(), {"name": "changedsince", "valueDateTime": "2026-11-01T00:00:00Z"},
                      {"name": "referenced", "resource": {"resourceType": "Patient", "id": "p1"}})
    assert len(bundles(package(body, stored()))) == 1


def test_error_texts_never_repeat_what_was_sent():
    error = refused(parameters(context_param("Patient-Jane-Doe-1961")), None)
    assert "Jane" not in error.text and "Jane" not in str(error.outcome())


def test_the_package_checks_catch_a_misordered_or_doubled_bundle():
    out = package(parameters(order_param()))
    bundle = bundles(out)[0]
    bundle["entry"].reverse()
    assert any("dtrb-1" in p for p in package_problems(out))
    bundle["entry"].reverse()
    bundle["entry"].append(bundle["entry"][1])
    assert any("exactly one QuestionnaireResponse" in p for p in package_problems(out))
    out["parameter"].append({"name": "outcome", "resource": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "warning", "code": "not-found"}]}})
    assert any("details.text" in p for p in package_problems(out))
