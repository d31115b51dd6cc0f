"""Records as EHRs write them: conditions in words, partial dates, stale remission codes.

Each test starts from a sandbox record that meets its policy, changes it the way a real chart differs
(a problem-list entry with text only, a birthDate with only a year, a myeloma coded "in remission"
while the labs show progression), and runs the whole mapping + policy evaluation.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

import pytest

from fhir_mappings.clinical_facts import ClinicalFacts
from fhir_mappings.patient_record import PatientRecord
from policies.decision import Status, Verdict
from policies.engine import evaluate
from policies.loader import shipped_policies

SANDBOX = Path(__file__).parents[2] / "sandbox"
AS_OF = date(2026, 11, 24)
POLICIES = {p.id.split(".")[-1]: p for p in shipped_policies()}
MEETS = {"481": "abecma-meets-all-criteria", "769": "kite772-meets-all-criteria"}
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


def _hook(policy: str) -> dict:
    return copy.deepcopy(json.loads((SANDBOX / "hooks" / f"{MEETS[policy]}-prefetch.json").read_text(encoding="utf-8")))


def decide(policy: str, change=lambda prefetch, patient_id: None):
    hook = _hook(policy)
    patient_id = hook["context"]["patientId"]
    change(hook["prefetch"], patient_id)
    orders = tuple(e["resource"] for e in hook["context"]["draftOrders"]["entry"])
    record = PatientRecord.build(patient_id, [*hook["prefetch"].values(), *orders])
    decision = evaluate(POLICIES[policy], ClinicalFacts(record), orders[0], AS_OF, orders)
    return decision, {c.id: c for c in decision.criteria}


def problem(text: str, clinical: str = "active", **code):
    """A problem-list entry as EHRs send free-text problems: Condition.code.text and no coding."""
    def change(prefetch, patient_id):
        prefetch["conditions"].setdefault("entry", []).append({"resource": {
            "resourceType": "Condition", "id": f"free-text-{len(prefetch['conditions'].get('entry', []))}",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": clinical}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": "problem-list-item"}]}],
            "code": {"text": text, **code},
            "subject": {"reference": f"Patient/{patient_id}"},
            "recordedDate": "2026-09-14",
        }})
    return change


@pytest.mark.parametrize("policy", ["481", "769"])
def test_the_unchanged_records_meet_their_policies(policy):
    assert decide(policy)[0].verdict is Verdict.MEETS_POLICY


@pytest.mark.parametrize("policy, text, criterion, status, verdict", [
    ("481", "Leptomeningeal myeloma", "I.A.6", Status.NOT_MET, Verdict.DOES_NOT_MEET),
    ("481", "CNS involvement: none", "I.A.6", Status.MET, Verdict.MEETS_POLICY),
    ("481", "Rule out CNS involvement", "I.A.6", Status.UNKNOWN, Verdict.DOCUMENTATION_INCOMPLETE),
    ("481", "History of seizure (2015), resolved", "III.B", Status.NOT_MET, Verdict.DOES_NOT_MEET),
    ("481", "Parkinson's disease", "I.A.6", Status.NOT_MET, Verdict.DOES_NOT_MEET),
    ("481", "Denies seizures", "I.A.6", Status.MET, Verdict.MEETS_POLICY),
    ("769", "Leptomeningeal enhancement on MRI, suspicious for myelomatous meningitis", "III.B", Status.UNKNOWN,
     Verdict.DOCUMENTATION_INCOMPLETE),
    ("769", "Transient ischemic attack 2019", "III.B", Status.NOT_MET, Verdict.DOES_NOT_MEET),
    ("769", "Meningeal involvement by myeloma", "III.B", Status.NOT_MET, Verdict.DOES_NOT_MEET),
])
def test_conditions_written_in_words(policy, text, criterion, status, verdict):
    decision, criteria = decide(policy, problem(text))
    assert criteria[criterion].status is status, criteria[criterion].reason
    assert decision.verdict is verdict
    if status is not Status.MET:
        assert {e.element for e in criteria[criterion].evidence} == {"Condition.code.text"}


def test_a_display_only_coding_is_read_like_text():
    decision, criteria = decide("481", problem("Neuro", coding=[{"system": "urn:oid:1.2.3.4", "display": "Dementia"}]))
    assert criteria["I.A.6"].status is Status.NOT_MET and decision.verdict is Verdict.DOES_NOT_MEET


def _birth_date(value: str):
    def change(prefetch, patient_id):
        prefetch["patient"]["birthDate"] = value
    return change


@pytest.mark.parametrize("birth, status, verdict", [
    ("1958", Status.MET, Verdict.MEETS_POLICY),                 # 67 or 68
    ("1958-03", Status.MET, Verdict.MEETS_POLICY),
    ("2008", Status.UNKNOWN, Verdict.DOCUMENTATION_INCOMPLETE),         # 17 or 18 on 2026-11-24
    ("2008-12", Status.NOT_MET, Verdict.DOES_NOT_MEET),   # 17 whatever the day
])
def test_partial_birth_date(birth, status, verdict):
    decision, criteria = decide("481", _birth_date(birth))
    age = criteria["I.A.3"]
    assert age.status is status, age.reason
    assert decision.verdict is verdict


def _myeloma_coded_in_remission(prefetch, patient_id):
    for entry in prefetch["conditions"]["entry"]:
        condition = entry["resource"]
        if any(c.get("code") == "C90.02" for c in condition["code"]["coding"]):
            condition["code"] = {"coding": [{"system": ICD10CM, "code": "C90.01",
                                             "display": "Multiple myeloma in remission"}]}
            condition["clinicalStatus"]["coding"][0]["code"] = "remission"


def test_remission_code_with_progression_in_the_labs_is_relapsed():
    decision, criteria = decide("481", _myeloma_coded_in_remission)
    assert criteria["I.A.1"].status is Status.MET, criteria["I.A.1"].reason
    assert "progressive disease" in criteria["I.A.1"].reason
    assert decision.verdict is Verdict.MEETS_POLICY
