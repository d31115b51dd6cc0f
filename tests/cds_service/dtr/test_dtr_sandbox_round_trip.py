"""The sandbox's documentation-incomplete scenarios, from their real FHIR prefetch, through the real
mappings and engine, into a prefilled draft, then completed by a clinician who attests every criterion
the record left open: the draft answers what the reviewer's expected file says the record shows, and
the re-evaluation meets the policy on exactly the attested criteria."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dtr_fixtures import BASE, with_answers

from cds_service.dtr.evaluate import reevaluate
from cds_service.dtr.prefill import DraftContext, draft_response
from cds_service.dtr.questionnaire import questionnaire
from fhir_mappings.clinical_facts import ClinicalFacts
from fhir_mappings.patient_record import PatientRecord
from policies.decision import Status, Verdict
from policies.engine import evaluate
from policies.loader import shipped_policies
from tests.dtr_checks import check_response, walk_items

SANDBOX = Path(__file__).parents[3] / "sandbox"
AS_OF = date(2026, 11, 24)
INCOMPLETE = sorted(path for path in (SANDBOX / "expected").glob("*.json")
                    if json.loads(path.read_text(encoding="utf-8"))["verdict"] == "documentation-incomplete")


def decide(expected: dict):
    hook = json.loads((SANDBOX / "hooks" / f"{expected['scenario']}-prefetch.json").read_text(encoding="utf-8"))
    orders = tuple(e["resource"] for e in hook["context"]["draftOrders"]["entry"])
    order = next(o for o in orders if f"{o['resourceType']}/{o['id']}" == expected["order"])
    record = PatientRecord.build(hook["context"]["patientId"], [*hook["prefetch"].values(), *orders])
    policy = next(p for p in shipped_policies() if p.id == expected["policy"])
    return policy, evaluate(policy, ClinicalFacts(record), order, AS_OF, orders), hook["context"]["patientId"]


@pytest.mark.parametrize("path", INCOMPLETE, ids=[p.stem for p in INCOMPLETE])
def test_incomplete_scenario_prefills_what_the_record_shows_and_attestation_completes_it(path):
    expected = json.loads(path.read_text(encoding="utf-8"))
    policy, decision, patient = decide(expected)
    assert decision.verdict is Verdict.DOCUMENTATION_INCOMPLETE
    form = questionnaire(policy, BASE)
    context = DraftContext(f"Patient/{patient}", decision.coverage or "Coverage/unknown", (decision.order,), "a1")
    draft = draft_response(form, context, datetime(2026, 11, 24, tzinfo=UTC), policy, decision)
    check_response(draft, form)
    answered = {item["linkId"]: item["answer"][0]["valueBoolean"]
                for item, _ in walk_items(draft.get("item")) if item["linkId"].endswith(".met")}
    nodes = {node.id: node for root in policy.required for node in root.walk() if node.check}
    for cid, status in expected["criteria"].items():
        if cid in nodes and not nodes[cid].children:  # leaves: the reviewer's status is their own
            assert answered.get(f"{cid}.met") == {"met": True, "not-met": False, "unknown": None}[status], cid

    status = {c.id: c.status for c in decision.criteria}
    open_leaves = [cid for cid in nodes if f"{cid}.met" not in answered and status[cid] is Status.UNKNOWN]
    done = with_answers(draft | {"id": "qr-1"}, form, {f"{cid}.met": True for cid in open_leaves})
    check_response(done, form)
    result = reevaluate(policy, form, decision, done)
    assert result.decision.verdict is Verdict.MEETS_POLICY
    assert set(result.attested) == set(open_leaves)
