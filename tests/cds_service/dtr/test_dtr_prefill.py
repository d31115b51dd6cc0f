"""The draft QuestionnaireResponse prefilled from a decision: met and not-met criteria answered with
their evidence (auto-server), unknown ones left to the clinician, a retrieval failure said as such.

Decisions come from the real engine on fake facts (tests/policies/policy_fakes.py), so the prefill is
tested against what the engine really produces, and from a hand-built decision of the tiny policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from dtr_fixtures import BASE, tiny_policy
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from cds_service.dtr.prefill import DraftContext, draft_response, evidence_line
from cds_service.dtr.questionnaire import questionnaire
from fhir_mappings.facts import CellDose, Evidence, Observed, Unknown
from policies.decision import CriterionResult, PolicyDecision, Status, Verdict
from policies.engine import evaluate
from policies.loader import shipped_policies
from tests.dtr_checks import ORIGIN, check_response, response_problems, walk_items
from tests.policies.policy_fakes import ABECMA_ORDER, AS_OF, NOT_SHOWN, RETRIEVAL_FAILED, FakeFacts, lines

AUTHORED = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
CONTEXT = DraftContext("Patient/p1", "Coverage/cov1", ("MedicationRequest/car-t-1",), "5f0c4d1e9a7b4b0c8d2e6f3a")
ABECMA = shipped_policies()[0]


def prefilled(facts: FakeFacts, policy=ABECMA) -> tuple[dict, PolicyDecision, dict]:
    q = questionnaire(policy, BASE)
    decision = evaluate(policy, facts, ABECMA_ORDER, AS_OF)
    qr = draft_response(q, CONTEXT, AUTHORED, policy, decision)
    QuestionnaireResponse.model_validate(qr)
    check_response(qr, q)
    return qr, decision, q


def answers(qr: dict) -> dict[str, object]:
    """linkId -> the answer's value (each prefilled item has one answer)."""
    out = {}
    for item, _ in walk_items(qr.get("item")):
        for answer in item.get("answer", ()):
            (key,) = [k for k in answer if k.startswith("value")]
            out[item["linkId"]] = answer[key]
    return out


def test_a_decision_that_meets_the_policy_answers_every_question_from_the_record():
    qr, decision, _ = prefilled(FakeFacts())
    assert decision.verdict is Verdict.MEETS_POLICY
    got = answers(qr)
    leaves = [c for c in decision.criteria if not c.children]
    assert all(got[f"{c.id}.met"] is True for c in leaves if c.status is Status.MET)
    assert got["I.A.3.evidence"] == ("Shown on the record: Age 67 on 2026-11-24 (required >= 18). "
                                     "Evidence: Patient/p1 birthDate = 1959-03-02.")
    assert got["I.A.5.met"] is True  # a group met as a whole proves its own check
    assert "I.A.4.a.ii.met" not in got  # unknown branch of a met any-group: left alone


def test_the_draft_names_patient_coverage_orders_use_and_assertion_and_never_echoes_coverage_information():
    qr, _, q = prefilled(FakeFacts())
    assert qr["questionnaire"] == f"{q['url']}|{q['version']}"
    assert (qr["status"], qr["subject"], qr["authored"]) == (
        "in-progress", {"reference": "Patient/p1"}, "2026-11-24T10:05:00+00:00")
    assert qr["identifier"]["value"] == CONTEXT.assertion_id
    urls = [e["url"].rsplit("/", 1)[1] for e in qr["extension"]]
    assert urls == ["qr-coverage", "qr-context", "intendedUse"]
    assert qr["extension"][2]["valueCodeableConcept"]["coding"][0]["code"] == "withpa"
    assert "ext-coverage-information" not in json.dumps(qr)


def test_every_answer_is_marked_auto_server():
    qr, _, _ = prefilled(FakeFacts(serum=NOT_SHOWN))
    origins = [ext for item, _ in walk_items(qr["item"]) for answer in item.get("answer", ())
               for ext in answer["extension"] if ext["url"] == ORIGIN]
    assert origins and all(o["extension"] == [{"url": "source", "valueCode": "auto-server"}] for o in origins)


def test_documentation_missing_leaves_the_question_and_its_evidence_to_the_clinician():
    qr, decision, _ = prefilled(FakeFacts(serum=NOT_SHOWN))
    assert decision.verdict is Verdict.DOCUMENTATION_INCOMPLETE
    got = answers(qr)
    for cid in ("I.A.4.a.i", "I.A.4.a.ii", "I.A.4.a.iii", "I.A.4.b"):
        assert f"{cid}.met" not in got and f"{cid}.evidence" not in got
    assert got["I.A.1.met"] is True and got["I.A.10.met"] is True


def test_a_retrieval_failure_says_could_not_be_retrieved_and_never_missing():
    qr, decision, _ = prefilled(FakeFacts(serum=RETRIEVAL_FAILED))
    assert decision.verdict is Verdict.INDETERMINATE
    got = answers(qr)
    assert "I.A.4.a.i.met" not in got
    assert got["I.A.4.a.i.evidence"].startswith("Could not be retrieved from the EHR")
    assert "Observation query timed out" in got["I.A.4.a.i.evidence"]
    assert "missing" not in json.dumps(qr).lower()
    assert "I.A.4.a.ii.evidence" not in got  # not shown (no failure there): nothing said


def test_a_contradicted_criterion_is_answered_false_with_its_evidence():
    dose = Observed(CellDose(600.0), (Evidence("MedicationRequest/car-t-1", "doseQuantity", "600", "10*6"),))
    qr, decision, _ = prefilled(FakeFacts(dose=dose))
    assert decision.verdict is Verdict.DOES_NOT_MEET
    got = answers(qr)
    assert got["I.A.10.met"] is False
    assert got["I.A.10.evidence"].startswith("Not met on the record: ")
    assert got["I.A.10.evidence"].endswith("Evidence: MedicationRequest/car-t-1 doseQuantity = 600 10*6.")


def test_unusable_values_found_are_cited_without_an_answer():
    unusable = Unknown("serum M-protein result has no unit",
                       evidence=(Evidence("Observation/spep-2", "valueQuantity", "1.4", date="2026-11-10"),))
    qr, _, _ = prefilled(FakeFacts(serum=unusable))
    got = answers(qr)
    assert "I.A.4.a.i.met" not in got
    text = got["I.A.4.a.i.evidence"]
    assert text.startswith("Not shown on the record: ") and "result has no unit" in text
    assert text.endswith("Values found but not usable: Observation/spep-2 valueQuantity = 1.4 (2026-11-10).")


@pytest.mark.parametrize("facts, expected", [
    (FakeFacts(lines_plain=lines(1)), False),  # parts met, whole not met: the own check failed
    (FakeFacts(lines_plain=lines(4, classes=("imid", "proteasome-inhibitor"))), None),  # a part explains it
    (FakeFacts(lines_plain=Unknown("no treatment history")), None),
])
def test_a_group_with_its_own_check_is_answered_only_where_the_combined_status_proves_it(facts, expected):
    qr, decision, _ = prefilled(facts)
    got = answers(qr)
    assert got.get("I.A.5.met") is expected
    assert {c.id: c.status for c in decision.criteria}["I.A.5"] is not Status.MET


def test_no_decision_gives_an_empty_but_valid_draft():
    q = questionnaire(ABECMA, BASE)
    qr = draft_response(q, DraftContext("Patient/p1", "Coverage/cov1", ()), AUTHORED)
    check_response(qr, q)
    assert "item" not in qr and "identifier" not in qr
    assert [e["url"].rsplit("/", 1)[1] for e in qr["extension"]] == ["qr-coverage", "intendedUse"]


def result(cid: str, status: Status, *evidence: Evidence, children=(), failed=False) -> CriterionResult:
    return CriterionResult(cid, cid, status, f"{cid} reason", evidence, failed, None, children)


def test_the_tiny_policy_prefills_by_its_own_structure():
    policy = tiny_policy()
    q = questionnaire(policy, BASE)
    M, N, U = Status.MET, Status.NOT_MET, Status.UNKNOWN
    criteria = (
        result("1", U, children=("1.a", "1.b", "1.c")),
        result("1.a", M, Evidence("Patient/p1", "birthDate", "1980-02-02")),
        result("1.b", U, children=("1.b.1", "1.b.2")),
        result("1.b.1", U, children=("1.b.1.x", "1.b.1.y")),
        result("1.b.1.x", M), result("1.b.1.y", U, failed=True), result("1.b.2", N),
        result("1.c", U, children=("1.c.p", "1.c.q", "1.c.r"), failed=True),
        result("1.c.p", M), result("1.c.q", U, failed=True), result("1.c.r", M),
        result("2", M), result("3", M),
    )
    decision = PolicyDecision("MedicationRequest/o1", "car-t", "Product P", policy.id, policy.version, policy.title,
                              Verdict.INDETERMINATE, criteria, (), policy.approval, coverage="Coverage/cov1")
    qr = draft_response(q, CONTEXT, AUTHORED, policy, decision)
    check_response(qr, q)
    got = answers(qr)
    assert got["1.a.met"] is True and got["1.b.1.x.met"] is True and got["1.b.2.met"] is False
    assert "1.b.1.y.met" not in got and got["1.b.1.y.evidence"].startswith("Could not be retrieved")
    assert "1.c.met" not in got  # n_of parts met (2 of 3), whole unknown: the own check is unknown
    assert got["1.c.evidence"].startswith("Could not be retrieved")  # flag from a part or not: never "missing"
    assert "1.fact" not in got and "1.a.fact" not in got  # EHR facts are the client's to fill


def test_evidence_line_reads_reference_element_value_unit_and_date():
    assert evidence_line(Evidence("Observation/m1", "valueQuantity", "1.2", "g/dL", "2026-11-10")) == \
        "Observation/m1 valueQuantity = 1.2 g/dL (2026-11-10)"
    assert evidence_line(Evidence("Condition/c1", "code")) == "Condition/c1 code"


def test_the_checks_refuse_a_payer_answer_on_an_item_the_client_fills():
    qr, _, q = prefilled(FakeFacts())
    group = next(item for item in qr["item"][0]["item"] if item["linkId"] == "I.A.3")
    group["item"].insert(0, {"linkId": "I.A.3.fact", "answer": [{"valueDate": "1959-03-02", "extension": [
        {"url": ORIGIN, "extension": [{"url": "source", "valueCode": "auto-server"}]}]}]})
    assert any("spec-73" in p for p in response_problems(qr, q))
