"""Re-evaluation of a completed form: the package's own draft, completed as a clinician would, decided
again by the engine; attestation fills unknowns, never overrides a contradiction, and is flagged."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from dtr_fixtures import BASE, with_answers
from fhir.resources.R4B.parameters import Parameters

from cds_service.dtr.evaluate import ATTESTED, evaluation_parameters, reevaluate
from cds_service.dtr.package import OperationError
from cds_service.dtr.prefill import DraftContext, draft_response
from cds_service.dtr.questionnaire import questionnaire
from fhir_mappings.facts import CellDose, Evidence, Observed, Unknown
from policies.decision import PolicyDecision, Status, Verdict
from policies.engine import evaluate
from policies.loader import shipped_policies
from tests.crd_checks import extension_problems
from tests.policies.policy_fakes import ABECMA_ORDER, AS_OF, NOT_SHOWN, RETRIEVAL_FAILED, FakeFacts

POLICY = shipped_policies()[0]
FORM = questionnaire(POLICY, BASE)
CONTEXT = DraftContext("Patient/p1", "Coverage/cov1", ("MedicationRequest/car-t-1",), "a1b2c3")


def decided(facts: FakeFacts) -> PolicyDecision:
    return evaluate(POLICY, facts, ABECMA_ORDER, AS_OF)


def completed(decision: PolicyDecision, answers: dict[str, object]) -> dict:
    """The package's draft for ``decision`` completed with the clinician's ``answers``."""
    draft = draft_response(FORM, CONTEXT, datetime(2026, 11, 24, tzinfo=UTC), POLICY, decision)
    return with_answers(draft | {"id": "qr-1"}, FORM, answers)


def statuses(decision: PolicyDecision) -> dict[str, Status]:
    return {c.id: c.status for c in decision.criteria}


def test_attesting_the_missing_lab_meets_the_policy_and_is_flagged_for_review():
    stored = decided(FakeFacts(serum=NOT_SHOWN))
    assert stored.verdict is Verdict.DOCUMENTATION_INCOMPLETE
    note = "SPEP 1.1 g/dL on 2026-11-12, outside lab"
    response = completed(stored, {"I.A.4.a.i.met": True, "I.A.4.a.i.evidence": note})
    result = reevaluate(POLICY, FORM, stored, response)
    assert result.decision.verdict is Verdict.MEETS_POLICY
    assert result.attested == ("I.A.4.a.i",)
    criterion = {c.id: c for c in result.decision.criteria}["I.A.4.a.i"]
    assert criterion.reason == ATTESTED
    assert [e.reference for e in criterion.evidence] == ["QuestionnaireResponse/qr-1"] * 2
    assert criterion.evidence[1].value == note
    assert statuses(result.decision)["I.A.3"] is Status.MET  # the record's answers stay as they were


def test_no_answers_changes_nothing():
    stored = decided(FakeFacts(serum=NOT_SHOWN))
    result = reevaluate(POLICY, FORM, stored, completed(stored, {}))
    assert result.decision == stored and result.attested == ()


def test_attestation_never_overrides_a_contradiction_found_in_the_record():
    dose = Observed(CellDose(600.0), (Evidence("MedicationRequest/car-t-1", "doseQuantity", "600", "10*6"),))
    stored = decided(FakeFacts(dose=dose))
    result = reevaluate(POLICY, FORM, stored, completed(stored, {"I.A.10.met": True}))
    assert result.decision.verdict is Verdict.DOES_NOT_MEET and result.attested == ()
    before, after = ({c.id: c for c in d.criteria}["I.A.10"] for d in (stored, result.decision))
    assert after.status is Status.NOT_MET and after.evidence == before.evidence  # the record's evidence stays


@pytest.mark.parametrize("link", ["I.A.4.a.i.met", "I.A.3.met"])
def test_a_clinicians_no_is_not_met_whatever_the_record_showed(link):
    stored = decided(FakeFacts(serum=NOT_SHOWN))
    result = reevaluate(POLICY, FORM, stored, completed(stored, {link: False}))
    assert statuses(result.decision)[link.removesuffix(".met")] is Status.NOT_MET
    assert result.decision.verdict is (Verdict.DOES_NOT_MEET if link == "I.A.3.met" else
                                       Verdict.DOCUMENTATION_INCOMPLETE)  # other branches of I.A.4 remain open


def test_attestation_fills_what_could_not_be_retrieved():
    stored = decided(FakeFacts(serum=RETRIEVAL_FAILED))
    assert stored.verdict is Verdict.INDETERMINATE
    result = reevaluate(POLICY, FORM, stored, completed(stored, {"I.A.4.b.met": True}))
    assert result.decision.verdict is Verdict.MEETS_POLICY and result.attested == ("I.A.4.b",)


def test_a_group_whose_own_check_was_unknown_needs_its_own_answer():
    stored = decided(FakeFacts(lines_plain=Unknown("no treatment history")))
    parts = {"I.A.5.a.met": True, "I.A.5.b.met": True, "I.A.5.c.met": True}
    only_parts = reevaluate(POLICY, FORM, stored, completed(stored, parts))
    assert statuses(only_parts.decision)["I.A.5"] is Status.UNKNOWN
    whole = reevaluate(POLICY, FORM, stored, completed(stored, parts | {"I.A.5.met": True}))
    assert statuses(whole.decision)["I.A.5"] is Status.MET
    assert set(whole.attested) == {"I.A.5", "I.A.5.a", "I.A.5.b", "I.A.5.c"}


def test_the_parameters_carry_valid_coverage_information_with_the_same_assertion_id():
    stored = decided(FakeFacts(serum=NOT_SHOWN))
    result = reevaluate(POLICY, FORM, stored, completed(stored, {"I.A.4.a.i.met": True}))
    out = evaluation_parameters(result, date(2026, 11, 25), "a1b2c3")
    Parameters.model_validate(out)
    info = out["parameter"][0]
    assert info["valueReference"] == {"reference": "MedicationRequest/car-t-1"}
    extension = info["extension"][0]
    assert extension_problems(extension) == []
    parts = {p["url"]: p for p in extension["extension"]}
    assert parts["coverage-assertion-id"]["valueString"] == "a1b2c3"
    assert parts["covered"]["valueCode"] == "covered" and parts["pa-needed"]["valueCode"] == "auth-needed"
    assert parts["reason"]["valueCodeableConcept"]["text"].endswith("for prior authorization review: I.A.4.a.i")
    assert {"name": "verdict", "valueCode": "meets-policy"} in out["parameter"]
    attested = [p for p in out["parameter"] if p["name"] == "criterion"
                and {"name": "attested", "valueBoolean": True} in p["part"]]
    assert [p["part"][0]["valueString"] for p in attested] == ["I.A.4.a.i"]


@pytest.mark.parametrize("edit, status, expression", [
    (lambda r: r.update(questionnaire=FORM["url"] + "|2025-01-00000000"), 422, "QuestionnaireResponse.questionnaire"),
    (lambda r: r.update(status="in-progress"), 422, "QuestionnaireResponse.status"),
    (lambda r: r["item"].append({"linkId": "IX.9.met", "answer": [{"valueBoolean": True}]}), 400,
     "QuestionnaireResponse.item.linkId"),
    (lambda r: r["item"].append({"linkId": "I.A.10.met", "answer": [{"valueString": "yes"}]}), 400,
     "QuestionnaireResponse.item"),
    (lambda r: r.update(resourceType="Bundle"), 400, "QuestionnaireResponse"),
])
def test_responses_that_cannot_be_evaluated_are_refused(edit, status, expression):
    stored = decided(FakeFacts(serum=NOT_SHOWN))
    response = completed(stored, {})
    edit(response)
    with pytest.raises(OperationError) as caught:
        reevaluate(POLICY, FORM, stored, response)
    assert (caught.value.status, caught.value.expression) == (status, expression)


def test_a_decision_under_another_policy_version_is_refused():
    stored = decided(FakeFacts(serum=NOT_SHOWN))
    old = PolicyDecision(**{**stored.__dict__, "policy_version": "2025-11"})
    with pytest.raises(OperationError, match="policy changed"):
        reevaluate(POLICY, FORM, old, completed(stored, {}))
