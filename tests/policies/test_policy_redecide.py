"""``redecide`` and ``own_result``: deciding again from given own-check results (DTR re-evaluation)
reproduces the engine's decision when the given results are the stored ones."""

from __future__ import annotations

import pytest
from policy_fakes import ABECMA_ORDER, AS_OF, NOT_SHOWN, RETRIEVAL_FAILED, FakeFacts, lines

from fhir_mappings.facts import CellDose, Observed, Unknown
from policies.checks import LeafResult
from policies.decision import Status, Verdict
from policies.engine import evaluate, own_result, redecide
from policies.loader import shipped_policies

POLICY = shipped_policies()[0]


def stored_own(decision):
    results = {c.id: c for c in decision.criteria}
    own = {node.id: own_result(node, results) for root in POLICY.required for node in root.walk() if node.check}
    return {cid: result for cid, result in own.items() if result is not None}


@pytest.mark.parametrize("facts", [
    FakeFacts(), FakeFacts(serum=NOT_SHOWN), FakeFacts(serum=RETRIEVAL_FAILED),
    FakeFacts(dose=Observed(CellDose(600.0))), FakeFacts(lines_plain=lines(1)),
], ids=["meets", "not-shown", "retrieval-failed", "dose-over", "one-line"])
def test_redeciding_from_the_stored_own_results_gives_the_same_decision(facts):
    decision = evaluate(POLICY, facts, ABECMA_ORDER, AS_OF)
    assert redecide(POLICY, decision, stored_own(decision)) == decision


def test_a_groups_own_result_is_recovered_with_its_own_reason():
    decision = evaluate(POLICY, FakeFacts(lines_plain=lines(1)), ABECMA_ORDER, AS_OF)
    own = stored_own(decision)["I.A.5"]
    assert own.status is Status.NOT_MET and "; " not in own.reason and "1 prior line" in own.reason


def test_a_groups_own_result_that_cannot_be_told_is_none():
    decision = evaluate(POLICY, FakeFacts(lines_plain=Unknown("no treatment history")), ABECMA_ORDER, AS_OF)
    assert "I.A.5" not in stored_own(decision)
    decision = evaluate(POLICY, FakeFacts(lines_plain=lines(4, classes=("imid",))), ABECMA_ORDER, AS_OF)
    assert "I.A.5" not in stored_own(decision)  # not met, and its parts alone explain it


def test_missing_own_results_are_unknown_and_given_ones_decide():
    decision = evaluate(POLICY, FakeFacts(serum=NOT_SHOWN), ABECMA_ORDER, AS_OF)
    assert redecide(POLICY, decision, {}).verdict is Verdict.DOCUMENTATION_INCOMPLETE
    own = stored_own(decision) | {"I.A.4.b": LeafResult(Status.MET, "attested")}
    assert redecide(POLICY, decision, own).verdict is Verdict.MEETS_POLICY
