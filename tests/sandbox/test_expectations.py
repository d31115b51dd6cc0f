"""sandbox.expectations: how a hook response is judged against a scenario's expected file."""

from __future__ import annotations

import pytest

from sandbox.expectations import deciding_criteria, expected_for, mismatches, scenario_of_hook


def card(order: str, verdict: str, policy: str, **statuses: str) -> dict:
    criteria = [{"id": cid.replace("_", "."), "status": s, "reason": "r"} for cid, s in statuses.items()]
    return {"summary": "s", "extension": {"cart-cds.decision": {
        "order": order, "policy": policy, "verdict": verdict, "criteria": criteria}}}


@pytest.mark.parametrize("hook, scenario", [
    ("kite772-two-prior-lines-only-paginated-prefetch.json", "kite772-two-prior-lines-only"),
    ("abecma-meets-all-criteria-no-prefetch.json", "abecma-meets-all-criteria"),
    ("seizure-history-partial-prefetch.json", "seizure-history"),
    ("abecma-serum-m-protein-0.7-prefetch.json", "abecma-serum-m-protein-0.7"),
])
def test_scenario_of_hook(hook, scenario):
    assert scenario_of_hook(hook) == scenario


def test_matching_response_and_each_kind_of_mismatch():
    exp = expected_for("kite772-two-prior-lines-only")
    good = card(exp["order"], "does-not-meet", "CP.PHAR.769",
                I_A_5="not-met", I_A_5_a="met", I_A_5_b="met", I_A_5_c="met", I_A_1="met")
    assert mismatches(exp, {"cards": [good]}) == []
    wrong = card(exp["order"], "meets-policy", "CP.PHAR.769", I_A_5="met", I_A_5_a="met", I_A_5_b="met")
    problems = mismatches(exp, {"cards": [wrong]})
    assert "CAR-T order: verdict 'meets-policy', expected 'does-not-meet'" in problems
    assert "CAR-T order: I.A.5 is 'met', expected 'not-met'" in problems
    assert "CAR-T order: I.A.5.c is None, expected 'met'" in problems
    assert mismatches(exp, {"cards": []}) == [f"CAR-T order: no decision for {exp['order']}"]


def test_tocilizumab_order_is_compared_too():
    exp = expected_for("tocilizumab-beyond-allowance")
    cart = card(exp["order"], "meets-policy", "CP.PHAR.481",
                **{cid.replace(".", "_"): "met" for cid in exp["criteria"]})
    toci = card(exp["tocilizumab"]["order"], "meets-policy", "CP.PHAR.481", **{"I_A_approval_tocilizumab": "met"})
    problems = mismatches(exp, {"cards": [cart, toci]})
    assert problems == [
        "tocilizumab order: verdict 'meets-policy', expected 'does-not-meet'",
        "tocilizumab order: I.A.approval.tocilizumab is 'met', expected 'not-met'",
    ]


def test_deciding_criteria_prefers_not_met_then_unknown():
    decision = card("x", "does-not-meet", "p", I_A_3="not-met", I_A_4="unknown")["extension"]["cart-cds.decision"]
    assert deciding_criteria(decision) == ["I.A.3"]
    decision["criteria"] = [{"id": "I.A.4", "status": "unknown"}]
    assert deciding_criteria(decision) == ["I.A.4"]
