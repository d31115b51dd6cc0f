"""The engine's verdict rules, documentation list, referral and purity, and adding a policy as data."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from policy_fakes import (
    ABECMA_ORDER,
    AS_OF,
    ICD10,
    NOT_SHOWN,
    RETRIEVAL_FAILED,
    FakeFacts,
    condition,
    lines,
    measurement,
    not_myeloma,
)

from fhir_mappings.facts import CellDose, Coded, ConditionFinding, CoverageFinding, Observed
from policies.decision import Status, Verdict
from policies.engine import evaluate
from policies.loader import load_policies, shipped_policies

POLICIES = {p.id.rsplit(".", 1)[1]: p for p in shipped_policies()}
LYMPHOMA = ConditionFinding("Condition/dlbcl", Coded(ICD10, "C83.30", "Diffuse large B-cell lymphoma"),
                            "other-indication", "active", None)
LABS_FAILED = {"serum": RETRIEVAL_FAILED, "urine": RETRIEVAL_FAILED, "light_chains": RETRIEVAL_FAILED,
               "progression": RETRIEVAL_FAILED}


def decide(policy="481", **facts):
    return evaluate(POLICIES[policy], replace(FakeFacts(), **facts), ABECMA_ORDER, AS_OF)


def test_meets_policy_cites_evidence_and_terms():
    decision = decide()
    assert decision.verdict is Verdict.MEETS_POLICY
    assert decision.order == "MedicationRequest/car-t-1" and decision.order_kind == "car-t"
    assert decision.policy_id == "CP.PHAR.481" and decision.product == "Abecma (idecabtagene vicleucel)"
    assert decision.missing_documentation == () and decision.referral is None
    assert decision.coverage == "Coverage/cov1" and decision.line_of_business == "commercial"
    criteria = {c.id: c for c in decision.criteria}
    assert criteria["I.A.4.a.i"].evidence[0].reference == "Observation/lab"
    assert criteria["I.A"].children[0] == "I.A.1" and [c.id for c in decision.criteria][:2] == ["I.A", "I.A.1"]
    ext = decision.as_extension()
    assert ext["verdict"] == "meets-policy" and {"id": "I.A.3", "status": "met"}.items() <= ext["criteria"][3].items()


def test_the_same_patient_does_not_meet_769_on_dose_and_lines():
    decision = decide("769", lines_plain=lines(2))
    assert decision.verdict is Verdict.DOES_NOT_MEET
    assert {c.id for c in decision.with_status(Status.NOT_MET)} >= {"I.A.10", "I.A.5", "I.A"}


def test_documentation_incomplete_lists_what_to_submit():
    decision = decide(serum=NOT_SHOWN, age=NOT_SHOWN, dose=Observed(CellDose(300.0)))
    assert decision.verdict is Verdict.DOCUMENTATION_INCOMPLETE
    assert [d.split(":")[0] for d in decision.missing_documentation] == ["I.A.3", "I.A.4"]
    assert "M-protein" in decision.missing_documentation[1]


def test_not_met_wins_over_unknown():
    decision = decide(serum=NOT_SHOWN, age=Observed(17))
    assert decision.verdict is Verdict.DOES_NOT_MEET
    assert any(d.startswith("I.A.4") for d in decision.missing_documentation)


def test_indeterminate_when_an_unknown_stems_from_a_retrieval_failure():
    decision = decide(**LABS_FAILED)
    assert decision.verdict is Verdict.INDETERMINATE
    assert [c.id for c in decision.retrieval_failures] == ["I.A", "I.A.4", "I.A.4.a", "I.A.4.a.i", "I.A.4.a.ii",
                                                           "I.A.4.a.iii", "I.A.4.b"]
    assert decision.missing_documentation == (), "a retrieval failure is not missing documentation"


def test_indeterminate_exclusion_when_conditions_could_not_be_retrieved():
    decision = decide(conditions=RETRIEVAL_FAILED)
    assert decision.verdict is Verdict.INDETERMINATE
    assert {c.id for c in decision.retrieval_failures} == {"I.A", "I.A.6", "III.B"}


def test_contradiction_found_in_partial_data_still_does_not_meet():
    decision = decide(conditions=Observed((condition("stroke"),)), **LABS_FAILED)
    assert decision.verdict is Verdict.DOES_NOT_MEET


def test_retrieval_failure_and_missing_documentation_together_are_indeterminate_with_docs():
    decision = decide(conditions=RETRIEVAL_FAILED, age=NOT_SHOWN)
    assert decision.verdict is Verdict.INDETERMINATE
    assert [d.split(":")[0] for d in decision.missing_documentation] == ["I.A.3"]


@pytest.mark.parametrize("policy, coverage, expected", [
    ("481", Observed(CoverageFinding("Coverage/c", "medicaid")), {("medicaid", "CP.PMN.255"), ("medicaid", "CP.PMN.16"),
                                                                  ("medicaid", "CP.PMN.53")}),
    ("481", Observed(CoverageFinding("Coverage/c", "ichra")), {("ichra", "HIM.PA.33"), ("ichra", "HIM.PA.103"),
                                                               ("ichra", "HIM.PA.154")}),
    ("481", NOT_SHOWN, None),
    ("481", Observed(CoverageFinding("Coverage/c", None)), None),
    ("769", Observed(CoverageFinding("Coverage/c", "ichra")), None),  # 769 does not list ICHRA
])
def test_referral_by_line_of_business_when_not_multiple_myeloma(policy, coverage, expected):
    decision = decide(policy, diagnosis=not_myeloma(LYMPHOMA), member_coverage=coverage)
    assert decision.verdict is Verdict.DOES_NOT_MEET
    assert "Diffuse large B-cell lymphoma" in decision.referral.reason
    got = {(p.line_of_business, p.policy_id) for p in decision.referral.policies}
    if expected is None:  # unknown line of business: every line the policy lists, each kind
        lobs = POLICIES[policy].lines_of_business
        assert {lob for lob, _ in got} == set(lobs) and len(decision.referral.policies) == 3 * len(lobs)
    else:
        assert got == expected
    assert {p.kind for p in decision.referral.policies} == {"no-coverage-criteria", "non-formulary", "off-label"}
    assert decision.as_extension()["referral"]["policies"]


def test_no_referral_for_myeloma_or_unknown_indication():
    assert decide(diagnosis=not_myeloma()).referral is None
    assert decide().referral is None


def test_evaluation_is_pure_and_repeatable():
    facts = replace(FakeFacts(), serum=NOT_SHOWN)
    first = evaluate(POLICIES["481"], facts, ABECMA_ORDER, AS_OF)
    assert evaluate(POLICIES["481"], facts, ABECMA_ORDER, AS_OF) == first
    later = evaluate(POLICIES["481"], replace(facts, serum=measurement(1.0, "g/dL", date(2026, 11, 20))),
                     ABECMA_ORDER, date(2026, 12, 31))
    # as_of is the only clock: 41 days after the result it is outside the 30-day window
    assert {c.id: c.status for c in later.criteria}["I.A.4.a.i"] is Status.UNKNOWN


THIRD_POLICY = """
policy:
  id: CP.PHAR.999
  title: "Clinical Policy: Example CAR-T"
  version: "1"
  effective: "2026-01-01"
  in_force: {from: 2026-01-01}
  last_review: "2026-01"
  lines_of_business: [commercial]
  lines_of_business_text: "Commercial"
product:
  display: "Example product"
  names: ["example-cel"]
  value_set: car-t-products
  codes: []
initial_approval:
  id: I.A
  text: "Example indication (must meet all)"
  logic: all
  children:
    - id: I.A.1
      text: "Age >= 21 years"
      check: age_at_least
      params: {min_years: 21}
      documentation: "Date of birth"
    - id: I.A.2
      text: "Two of: serum M-protein >= 2 g/dL, urine M-protein >= 500 mg/24 h, FLC >= 20 mg/dL"
      logic: n_of
      n: 2
      documentation: "Two disease-burden labs from the last 14 days"
      children:
        - {id: I.A.2.a, text: "serum", check: serum_m_protein_at_least, params: {min_g_dl: 2, within_days: 14}}
        - {id: I.A.2.b, text: "urine", check: urine_m_protein_at_least, params: {min_mg_24h: 500, within_days: 14}}
        - {id: I.A.2.c, text: "FLC", check: involved_flc_at_least, params: {min_mg_dl: 20, within_days: 14}}
other_diagnoses:
  id: I.B
  text: "Other"
  applies_when_not_met: III.A
  rules:
    - {criterion: I.B.2, kind: off-label, text: "off-label", policies: {commercial: CP.CPA.09}}
continued_therapy:
  criterion:
    id: II.A.1
    text: "One dose only"
    check: no_prior_exposure
    params: {value_sets: [car-t-products], label: "CAR-T"}
  approval_duration: "Not applicable"
  other_diagnoses:
    id: II.B
    text: "Other"
    rules:
      - {criterion: II.B.2, kind: off-label, text: "off-label", policies: {commercial: CP.CPA.09}}
exclusions:
  text: "Not authorized"
  criteria:
    - {id: III.A, text: "Non-FDA approved indications", check: indication_is_multiple_myeloma}
approval:
  text: "6 months"
  duration_months: 6
  doses: 1
  pdac_review_required: false
  hcpcs: []
  tocilizumab:
    id: I.A.approval.tocilizumab
    text: "2 doses of tocilizumab up to 400 mg"
    check: tocilizumab_within_allowance
    params: {max_doses: 2, max_mg_per_dose: 400}
"""


def test_a_third_policy_is_data_only(tmp_path):
    (tmp_path / "cp-phar-999-example.yaml").write_text(THIRD_POLICY)
    (policy,) = load_policies(tmp_path)
    two_labs = replace(FakeFacts(), age=Observed(30), serum=measurement(2.0, "g/dL", date(2026, 11, 20)),
                       urine=measurement(600, "mg/24 h", date(2026, 11, 20)))
    decision = evaluate(policy, two_labs, ABECMA_ORDER, AS_OF)
    assert decision.policy_id == "CP.PHAR.999" and decision.verdict is Verdict.MEETS_POLICY
    assert decision.approval.duration_months == 6 and decision.approval.tocilizumab_max_mg_per_dose == 400
    one_lab = replace(two_labs, urine=measurement(100, "mg/24 h", date(2026, 11, 20)), light_chains=NOT_SHOWN)
    assert evaluate(policy, one_lab, ABECMA_ORDER, AS_OF).verdict is Verdict.DOCUMENTATION_INCOMPLETE
    young = replace(two_labs, age=Observed(20))
    assert evaluate(policy, young, ABECMA_ORDER, AS_OF).verdict is Verdict.DOES_NOT_MEET
    referred = evaluate(policy, replace(two_labs, diagnosis=not_myeloma(LYMPHOMA)), ABECMA_ORDER, AS_OF)
    assert [(p.line_of_business, p.policy_id) for p in referred.referral.policies] == [("commercial", "CP.CPA.09")]
