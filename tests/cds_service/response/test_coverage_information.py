"""CRD coverage-information system actions: the contract table, resp-37, assertion ids, and the checker.

The checker (``tests/crd_checks.py``) is itself tested here against public Inferno fixtures
(``crd_examples/``, sources in ``crd_examples/SOURCES.md``) and against deliberately broken actions, so
that a pass on the service's output means something.
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from datetime import date, datetime

import pytest

from cds_service.response.cards import CardSettings, decision_cards
from cds_service.response.coverage_information import (
    ASSERTIONS,
    COVERAGE_INFORMATION_URL,
    Assertion,
    coverage_information_actions,
    invariant_violations,
)
from cds_service.response.responses import Response
from policies.decision import Status, Verdict
from tests.cds_service import decision_examples as ex
from tests.conftest import load_json
from tests.crd_checks import check_coverage_information, coverage_information_problems, extension_problems
from tests.response_checks import check_response

AS_OF = date(2026, 11, 24)
ALL_ORDERS = ["MedicationRequest/abecma-1", "MedicationRequest/kite-1", "MedicationRequest/toci-1"]


def actions_json(*args, **kwargs) -> list[dict]:
    return [action.as_json() for action in coverage_information_actions(*args, **kwargs)]


def sub_extensions(action: dict) -> dict[str, list]:
    """The coverage-information sub-extension values of an action, by url."""
    extension = next(e for e in action["resource"]["extension"] if e["url"] == COVERAGE_INFORMATION_URL)
    out: dict[str, list] = {}
    for part in extension["extension"]:
        value = next(v for k, v in part.items() if k.startswith("value"))
        out.setdefault(part["url"], []).append(value)
    return out


def one_action(decision, drafts=None) -> dict:
    actions = actions_json([decision], drafts or ex.draft_orders(), AS_OF)
    assert len(actions) == 1
    check_coverage_information({"systemActions": actions}, drafts or ex.draft_orders(), [decision.order])
    return actions[0]


@pytest.mark.parametrize("build, covered, pa, doc, purpose, info, reason_code, reason_ids", [
    (ex.abecma_meets, "covered", "auth-needed", "clinical", "withpa", None, None, []),
    (ex.abecma_incomplete, "conditional", "auth-needed", "clinical", None, "OTH", None, ["I.A.4", "I.A.5"]),
    (ex.kite_does_not_meet, "not-covered", None, None, None, None, None, ["I.A.4", "I.A.9"]),
    (ex.kite_indeterminate, "indeterminate", "indeterminate", "indeterminate", None, None, "technical",
     ["I.A.1", "I.A.4", "I.A.6", "III.B"]),
])
def test_codes_follow_the_contract_table(build, covered, pa, doc, purpose, info, reason_code, reason_ids):
    decision = build()
    parts = sub_extensions(one_action(decision))
    assert parts["covered"] == [covered]
    assert parts.get("pa-needed") == ([pa] if pa else None)
    assert parts.get("doc-needed") == ([doc] if doc else None)
    assert parts.get("doc-purpose") == ([purpose] if purpose else None)
    assert parts.get("info-needed") == ([info] if info else None)
    [reason] = parts["reason"]
    assert reason["text"]
    codes = [c["code"] for c in reason.get("coding", [])]
    assert codes == ([reason_code] if reason_code else [])
    for cid in reason_ids:
        assert re.search(rf"(^|[ :,]){re.escape(cid)}(,|;|$)", reason["text"])
    assert parts["coverage"] == [{"reference": "Coverage/cov-1"}]
    assert parts["date"] == ["2026-11-24"]
    assert re.fullmatch(r"[0-9a-f]{32}", parts["coverage-assertion-id"][0])


def test_does_not_meet_reason_names_the_referral_for_the_line_of_business():
    parts = sub_extensions(one_action(ex.abecma_other_diagnosis("medicaid")))
    assert parts["reason"][0]["text"] == "Does not meet CP.PHAR.481: criteria not met: I.A.1; refer to CP.PMN.53"


def test_the_update_is_the_draft_order_plus_one_extension():
    drafts = ex.draft_orders()
    pristine = copy.deepcopy(drafts)
    action = one_action(ex.abecma_meets(), drafts)
    assert action["type"] == "update" and "resourceId" not in action
    assert action["description"] == "Coverage information for Abecma (idecabtagene vicleucel) under CP.PHAR.481: covered"
    resource = action["resource"]
    assert {k: v for k, v in resource.items() if k != "extension"} == {
        k: v for k, v in pristine[0].items() if k != "extension"}
    assert resource["extension"][0] == pristine[0]["extension"][0]  # the EHR's own extension, first, untouched
    assert [e["url"] for e in resource["extension"]][1:] == [COVERAGE_INFORMATION_URL]
    assert drafts == pristine  # the request's draft was not modified
    resource["dosageInstruction"][0]["text"] = "changed"
    assert drafts == pristine  # a deep copy


def test_an_order_without_extensions_gets_just_the_coverage_extension():
    draft = {k: v for k, v in ex.draft_orders()[1].items() if k != "extension"}
    action = one_action(ex.kite_does_not_meet(), [draft])
    assert [e["url"] for e in action["resource"]["extension"]] == [COVERAGE_INFORMATION_URL]


def test_assertion_ids_are_shared_per_coverage_and_distinct_across_coverages():
    decisions = [ex.abecma_meets(), ex.tocilizumab(Status.MET, "800", "4"),
                 replace(ex.kite_does_not_meet(), coverage="Coverage/cov-2")]
    actions = actions_json(decisions, ex.draft_orders(), AS_OF)
    check_coverage_information({"systemActions": actions}, ex.draft_orders(), ALL_ORDERS)
    ids = [sub_extensions(a)["coverage-assertion-id"][0] for a in actions]
    assert ids[0] == ids[1] != ids[2]
    again = actions_json(decisions, ex.draft_orders(), AS_OF)
    assert sub_extensions(again[0])["coverage-assertion-id"] != ids[:1]  # new per response


def test_no_coverage_no_action_and_coverage_info_false_suppresses_all():
    decisions = [replace(ex.abecma_meets(), coverage=None), ex.kite_does_not_meet()]
    actions = actions_json(decisions, ex.draft_orders(), AS_OF)
    assert [a["resource"]["id"] for a in actions] == ["kite-1"]
    assert actions_json(decisions, ex.draft_orders(), AS_OF, enabled=False) == []


def test_a_datetime_as_of_is_written_as_a_date():
    actions = actions_json([ex.abecma_meets()], ex.draft_orders(), datetime(2026, 11, 24, 23, 5))
    assert sub_extensions(actions[0])["date"] == ["2026-11-24"]


def test_an_earlier_assertion_for_the_same_coverage_is_replaced_and_others_kept():
    earlier = actions_json([ex.abecma_incomplete()], ex.draft_orders(), AS_OF)[0]["resource"]
    other_payer = copy.deepcopy(earlier["extension"][-1])
    other_payer["extension"][0] = {"url": "coverage", "valueReference": {"reference": "Coverage/secondary"}}
    earlier["extension"].append(other_payer)
    action = one_action(ex.abecma_meets(), [earlier])
    urls_and_coverage = [(e["url"], e.get("extension", [{}])[0].get("valueReference")) for e in action["resource"]["extension"]]
    assert urls_and_coverage[1:] == [(COVERAGE_INFORMATION_URL, {"reference": "Coverage/secondary"}),
                                    (COVERAGE_INFORMATION_URL, {"reference": "Coverage/cov-1"})]
    assert {"url": "covered", "valueCode": "covered"} in action["resource"]["extension"][-1]["extension"]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="MedicationRequest/abecma-1"):
        actions_json([ex.abecma_meets()], ex.draft_orders()[1:], AS_OF)
    broken = dict(ex.draft_orders()[0], extension={"url": "x"})
    with pytest.raises(ValueError, match="extension must be an array"):
        actions_json([ex.abecma_meets()], [broken], AS_OF)


def test_the_verdict_table_satisfies_the_invariants_and_the_guard_catches_broken_rows():
    assert all(invariant_violations(a, has_reason=True) == [] for a in ASSERTIONS.values())
    assert set(ASSERTIONS) == set(Verdict)
    assert invariant_violations(Assertion("not-covered", "auth-needed"), True) == ["q2: not-covered must not carry pa-needed"]
    assert "q3: conditional needs info-needed" in invariant_violations(Assertion("conditional", "auth-needed"), True)
    assert "q4: no-auth/satisfied must not carry doc-purpose withpa" in invariant_violations(
        Assertion("covered", "no-auth", doc_purpose="withpa"), True)
    assert "q9: indeterminate needs a reason" in invariant_violations(
        Assertion("indeterminate", "indeterminate"), has_reason=False)
    assert "pa-needed is required unless not-covered" in invariant_violations(Assertion("covered"), True)


# --------------------------------------------------------------------------------------------------
# The checker catches what it must
# --------------------------------------------------------------------------------------------------


def inferno_fixture(name: str) -> tuple[dict, list[dict]]:
    action = load_json(f"cds_service/response/crd_examples/inferno-coverage-info-action-{name}.json")
    draft = copy.deepcopy(action["resource"])
    del draft["extension"]
    return {"systemActions": [action]}, [draft]


def test_checker_accepts_the_inferno_covered_fixture_and_flags_the_conditional_one():
    check_coverage_information(*inferno_fixture("covered"), expected_orders=["DeviceRequest/devreq-015-e0250"])
    problems = coverage_information_problems(*inferno_fixture("conditional"))
    assert [p.split(": ", 1)[1] for p in problems] == [
        "q8: doc-purpose requires reason",
        "pa-needed required unless not-covered (CRD 2.0.1 q2 expression)",
    ]


def _mutated(mutate) -> list[str]:
    drafts = ex.draft_orders()
    actions = actions_json([ex.abecma_meets(), ex.kite_indeterminate()], drafts, AS_OF)
    mutate(actions)
    return coverage_information_problems({"systemActions": actions}, drafts, ALL_ORDERS[:2])


def _parts(action) -> list[dict]:
    return action["resource"]["extension"][-1]["extension"]


@pytest.mark.parametrize("mutate, expected", [
    (lambda a: a[0]["resource"].update(status="active"), "elements other than extension changed"),
    (lambda a: a[0]["resource"]["extension"].pop(0), "an extension of the draft order was removed"),
    (lambda a: a[0]["resource"]["extension"].append({"url": "http://x", "valueString": "y"}), "exactly one added"),
    (lambda a: a[0].pop("description"), "description required"),
    (lambda a: a[0].update(type="create"), "must be an update"),
    (lambda a: a[1]["resource"].update(id="other"), "not in draftOrders"),
    (lambda a: a.append(copy.deepcopy(a[0])), "more than one coverage-information action"),
    (lambda a: a.pop(), "expected ['MedicationRequest/abecma-1', 'MedicationRequest/kite-1']"),
    (lambda a: _parts(a[1])[-1].update(valueString="another-id"), "2 distinct coverage-assertion-ids"),
    (lambda a: _parts(a[1]).pop(4), "q9: indeterminate requires reason"),
    (lambda a: _parts(a[0])[1].update(valueCode="not-covered"), "q2: not-covered forbids pa-needed"),
    (lambda a: _parts(a[0])[1].update(valueCode="conditional"), "q3: conditional requires info-needed"),
    (lambda a: _parts(a[0])[2].update(valueCode="no-auth"), "q4: no-auth/satisfied forbid doc-purpose withpa"),
    (lambda a: _parts(a[0])[2].update(valueCode="satisfied"), "q5: satisfied-pa-id iff pa-needed satisfied"),
    (lambda a: _parts(a[0])[5].update(valueCodeableConcept={"coding": [{"system": "http://x", "code": "y"}]}),
     "q7: reason coded outside the value set requires text"),
    (lambda a: _parts(a[0]).pop(2), "pa-needed required unless not-covered"),
    (lambda a: _parts(a[0])[1].update(valueCode="maybe"), "covered: code 'maybe' not in the required value set"),
    (lambda a: _parts(a[0])[6].update(valueDate="24/11/2026"), "is not a FHIR date"),
    (lambda a: _parts(a[0]).append({"url": "date", "valueDate": "2026-11-24"}), "date: occurs 2 times"),
    (lambda a: _parts(a[0])[0].update(valueReference={"reference": "Patient/p1"}), "is not a reference to a Coverage"),
    (lambda a: _parts(a[0]).append({"url": "surprise", "valueString": "x"}), "unknown sub-extension 'surprise'"),
    (lambda a: _parts(a[0])[3].update(valueString="clinical"), "exactly one valueCode expected"),
])
def test_checker_flags_each_broken_rule(mutate, expected):
    problems = _mutated(mutate)
    assert any(expected in p for p in problems), problems


def test_checker_rejects_assertion_ids_shared_across_coverages_and_a_foreign_extension():
    def share(actions):
        _parts(actions[1])[0].update(valueReference={"reference": "Coverage/cov-2"})
        _parts(actions[1])[-1].update(valueString=_parts(actions[0])[-1]["valueString"])
    assert any("used for different coverages" in p for p in _mutated(share))
    assert extension_problems({"url": "http://example.org/other"}) == ["not an ext-coverage-information extension"]


def test_a_response_with_every_verdict_passes_the_response_and_crd_checks():
    decisions = [ex.abecma_meets(), ex.kite_does_not_meet(), replace(ex.tocilizumab(Status.NOT_MET, "1000", "4"),
                                                                      coverage="Coverage/cov-2")]
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": resource} for resource in ex.draft_orders()]}
    body = Response(
        cards=tuple(decision_cards(decisions, CardSettings("Example Health Plan"))),
        system_actions=tuple(coverage_information_actions(decisions, ex.draft_orders(), AS_OF)),
    ).as_json()
    check_response(body, draft_orders=bundle, expect_system_actions=True)
    check_coverage_information(body, bundle, ALL_ORDERS)
