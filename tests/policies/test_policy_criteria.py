"""One table per criterion, for both policies: met / not-met / unknown, with the seeds' boundaries.
Facts come from ``policy_fakes.FakeFacts`` (a typical patient meeting CP.PHAR.481 on 2026-11-24)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from policy_fakes import (
    ABECMA_ORDER,
    AS_OF,
    ICD10,
    NOT_SHOWN,
    NUCC,
    RETRIEVAL_FAILED,
    TOCILIZUMAB_ORDER,
    FakeFacts,
    condition,
    exposure,
    flc,
    lines,
    measurement,
    myeloma,
    not_myeloma,
)

from fhir_mappings.facts import (
    AgeBounds,
    CellDose,
    Coded,
    ConditionFinding,
    DateSpan,
    Evidence,
    LineOfTherapy,
    LinesOfTherapy,
    Observed,
    ProgressionFinding,
    TocilizumabRequest,
    Unknown,
)
from fhir_mappings.parsing import parse_date
from policies.decision import Status
from policies.engine import evaluate, evaluate_tocilizumab
from policies.loader import shipped_policies

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN
POLICIES = {p.id.rsplit(".", 1)[1]: p for p in shipped_policies()}
BOTH = ("481", "769")


def result(policy: str, criterion: str, **facts):
    decision = evaluate(POLICIES[policy], replace(FakeFacts(), **facts), ABECMA_ORDER, AS_OF)
    return next(c for c in decision.criteria if c.id == criterion)


def cases(*rows):
    """Expand rows of (policies, label, facts, expected) into one pytest param per policy."""
    return [pytest.param(p, facts, expected, id=f"{p}-{label}") for ps, label, facts, expected in rows for p in ps]


def run(policy, criterion, facts, expected):
    got = result(policy, criterion, **facts)
    assert got.status is expected, got.reason
    return got


def days_ago(n: int) -> date:
    return AS_OF - timedelta(days=n)


LYMPHOMA = ConditionFinding("Condition/dlbcl", Coded(ICD10, "C83.30", "Diffuse large B-cell lymphoma"),
                            "other-indication", "active", None)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "relapsed", {}, MET),
    (BOTH, "remission-only", {"diagnosis": myeloma(relapsed=False)}, NOT_MET),
    (BOTH, "other-indication", {"diagnosis": not_myeloma(LYMPHOMA)}, NOT_MET),
    (BOTH, "status-not-shown", {"diagnosis": myeloma(relapsed=None)}, UNKNOWN),
    (BOTH, "no-diagnosis", {"diagnosis": not_myeloma()}, UNKNOWN),
    (BOTH, "conditions-failed", {"diagnosis": RETRIEVAL_FAILED}, UNKNOWN),
))
def test_I_A_1_relapsed_refractory_myeloma(policy, facts, expected):
    run(policy, "I.A.1", facts, expected)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "hem-onc", {}, MET),
    (BOTH, "family-medicine", {"specialties": Observed((Coded(NUCC, "207Q00000X", "Family Medicine"),))}, UNKNOWN),
    (BOTH, "none-recorded", {"specialties": Observed(())}, UNKNOWN),
    (BOTH, "not-shown", {"specialties": NOT_SHOWN}, UNKNOWN),
))
def test_I_A_2_prescriber_oncologist_or_hematologist(policy, facts, expected):
    """Another specialty is unknown, not not-met: prescribing in consultation is allowed."""
    run(policy, "I.A.2", facts, expected)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "18-on-birthday", {"age": Observed(18)}, MET),
    (BOTH, "17", {"age": Observed(17)}, NOT_MET),
    (BOTH, "no-birth-date", {"age": NOT_SHOWN}, UNKNOWN),
    (BOTH, "partial-birth-date-all-adult", {"age": Observed(AgeBounds(65, 66))}, MET),
    (BOTH, "partial-birth-date-all-minor", {"age": Observed(AgeBounds(16, 17))}, NOT_MET),
    (BOTH, "partial-birth-date-straddles-18", {"age": Observed(AgeBounds(17, 18))}, UNKNOWN),
))
def test_I_A_3_adult(policy, facts, expected):
    run(policy, "I.A.3", facts, expected)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (("481",), "0.5", {"serum": measurement(0.5, "g/dL", days_ago(3))}, MET),
    (("481",), "0.49", {"serum": measurement(0.49, "g/dL", days_ago(3))}, NOT_MET),
    (("769",), "1.0", {"serum": measurement(1.0, "g/dL", days_ago(3))}, MET),
    (("769",), "0.99", {"serum": measurement(0.99, "g/dL", days_ago(3))}, NOT_MET),
    (("769",), "0.5-is-481-only", {"serum": measurement(0.5, "g/dL", days_ago(3))}, NOT_MET),
    (BOTH, "exactly-30-days", {"serum": measurement(1.5, "g/dL", days_ago(30))}, MET),
    (BOTH, "31-days", {"serum": measurement(1.5, "g/dL", days_ago(31))}, UNKNOWN),
    (BOTH, "future-dated", {"serum": measurement(1.5, "g/dL", AS_OF + timedelta(days=1))}, UNKNOWN),
    (BOTH, "not-shown", {"serum": NOT_SHOWN}, UNKNOWN),
))
def test_I_A_4_a_i_serum_m_protein(policy, facts, expected):
    run(policy, "I.A.4.a.i", facts, expected)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "200", {"urine": measurement(200, "mg/24 h", days_ago(10))}, MET),
    (BOTH, "199", {"urine": measurement(199, "mg/24 h", days_ago(10))}, NOT_MET),
    (BOTH, "31-days", {"urine": measurement(900, "mg/24 h", days_ago(31))}, UNKNOWN),
    (BOTH, "not-shown", {}, UNKNOWN),
))
def test_I_A_4_a_ii_urine_m_protein(policy, facts, expected):
    run(policy, "I.A.4.a.ii", facts, expected)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "10-abnormal-ratio", {"light_chains": flc(10.0, True)}, MET),
    (BOTH, "10-normal-ratio", {"light_chains": flc(10.0, False)}, NOT_MET),
    (BOTH, "9.9-abnormal-ratio", {"light_chains": flc(9.9, True)}, NOT_MET),
    (BOTH, "ratio-not-judged", {"light_chains": flc(25.0, None)}, UNKNOWN),
    (BOTH, "31-days", {"light_chains": flc(25.0, True, days_ago(31))}, UNKNOWN),
    (BOTH, "not-shown", {}, UNKNOWN),
))
def test_I_A_4_a_iii_involved_free_light_chain(policy, facts, expected):
    run(policy, "I.A.4.a.iii", facts, expected)


def pd(assessed: date) -> Observed:
    return Observed(ProgressionFinding(assessed, "serum M-protein 2.6 vs nadir 2.0 g/dL", "serum-m-protein"))


def stable(assessed: date) -> Observed:
    finding = ProgressionFinding(assessed, "documented disease status: stable", "disease-status", progressive=False)
    return Observed(finding, (Evidence("Observation/ds1", "Observation.valueCodeableConcept", "359746009"),))


LAST_DOSE = Observed(DateSpan(date(2026, 9, 1), date(2026, 9, 1)))


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "60-days-after", {"progression": pd(date(2026, 10, 31)), "last_dose": LAST_DOSE}, MET),
    (BOTH, "same-day", {"progression": pd(date(2026, 9, 1)), "last_dose": LAST_DOSE}, MET),
    (BOTH, "61-days-after", {"progression": pd(date(2026, 11, 1)), "last_dose": LAST_DOSE}, UNKNOWN),
    (BOTH, "before-last-dose", {"progression": pd(date(2026, 8, 1)), "last_dose": LAST_DOSE}, UNKNOWN),
    (BOTH, "last-dose-not-shown", {"progression": pd(date(2026, 10, 1))}, UNKNOWN),
    (BOTH, "no-progression", {"last_dose": LAST_DOSE}, UNKNOWN),
    (BOTH, "stable-documented-after-last-dose", {"assessment": stable(date(2026, 10, 1)), "last_dose": LAST_DOSE},
     NOT_MET),
    (BOTH, "stable-after-an-old-progression", {"progression": pd(date(2026, 8, 1)),
                                               "assessment": stable(date(2026, 10, 1)), "last_dose": LAST_DOSE}, NOT_MET),
    (BOTH, "stable-before-last-dose", {"assessment": stable(date(2026, 8, 15)), "last_dose": LAST_DOSE}, UNKNOWN),
    (BOTH, "stable-but-last-dose-not-shown", {"assessment": stable(date(2026, 10, 1))}, UNKNOWN),
))
def test_I_A_4_b_progressive_disease_after_last_regimen(policy, facts, expected):
    """A progression outside the window leaves the criterion unshown; a documented non-progressing status
    after the last dose (and no progression in the window) contradicts it."""
    run(policy, "I.A.4.b", facts, expected)


def pd_in(span: DateSpan) -> Observed:
    finding = ProgressionFinding(span.latest, "documented disease status: progression", "disease-status",
                                 assessed_earliest=span.earliest)
    return Observed(finding)


def stable_in(span: DateSpan) -> Observed:
    status = stable(span.latest)
    return Observed(replace(status.value, assessed_earliest=span.earliest), status.evidence)


@pytest.mark.parametrize("policy, facts, expected", cases(
    # a last dose of "2026-09": 2026-11-15 is 46 to 75 days after it, not shown within 60
    (BOTH, "last-dose-month-straddles", {"progression": pd(date(2026, 11, 15)), "last_dose": Observed(parse_date("2026-09"))},
     UNKNOWN),
    (BOTH, "last-dose-month-inside", {"progression": pd(date(2026, 10, 15)), "last_dose": Observed(parse_date("2026-09"))}, MET),
    (BOTH, "progression-month-inside", {"progression": pd_in(parse_date("2026-10")), "last_dose": LAST_DOSE}, MET),
    (BOTH, "progression-month-outside", {"progression": pd_in(parse_date("2026-11")), "last_dose": LAST_DOSE}, UNKNOWN),
    (BOTH, "progression-month-may-precede-dose", {"progression": pd_in(parse_date("2026-09")),
                                                  "last_dose": Observed(DateSpan(date(2026, 9, 10), date(2026, 9, 10)))},
     UNKNOWN),
    (BOTH, "stable-month-certainly-after", {"assessment": stable_in(parse_date("2026-10")), "last_dose": Observed(parse_date("2026-09"))},
     NOT_MET),
    (BOTH, "stable-month-same-as-dose", {"assessment": stable_in(parse_date("2026-09")), "last_dose": Observed(parse_date("2026-09"))},
     UNKNOWN),
))
def test_I_A_4_b_partial_dates_are_judged_on_every_day_they_allow(policy, facts, expected):
    """Met only when the progression is within the window for every day both dates allow; a stable
    status contradicts it only when certainly after the last dose (fhir_mappings.parsing.follows_within)."""
    run(policy, "I.A.4.b", facts, expected)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "serum-met", {}, MET),
    (BOTH, "serum-low-but-flc-met", {"serum": measurement(0.2, "g/dL", days_ago(2)), "light_chains": flc(12, True)}, MET),
    (BOTH, "pd-only", {"serum": NOT_SHOWN, "progression": pd(date(2026, 10, 1)), "last_dose": LAST_DOSE}, MET),
    (BOTH, "all-shown-below", {"serum": measurement(0.2, "g/dL", days_ago(2)),
                               "urine": measurement(50, "mg/24 h", days_ago(2)), "light_chains": flc(3, True)}, UNKNOWN),
    (BOTH, "nothing-shown", {"serum": NOT_SHOWN}, UNKNOWN),
))
def test_I_A_4_measurable_or_progressive_disease(policy, facts, expected):
    """I.A.4 is any(a, b): low labs alone do not contradict it while b (progression) is unshown."""
    run(policy, "I.A.4", facts, expected)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (("481",), "2-lines", {"lines_plain": lines(2)}, MET),
    (("481",), "1-line", {"lines_plain": lines(1)}, NOT_MET),
    (("769",), "3-lines", {"lines_plain": lines(3)}, MET),
    (("769",), "2-lines", {"lines_plain": lines(2)}, NOT_MET),
    (("481",), "1-to-3", {"lines_plain": lines(1, 3)}, UNKNOWN),
    (("769",), "2-to-4", {"lines_plain": lines(2, 4)}, UNKNOWN),
    (BOTH, "not-shown", {"lines_plain": NOT_SHOWN}, UNKNOWN),
    # consolidation folded into the induction's line only for 769: 4 lines counted plainly, 2 with it
    (("481",), "consolidation-separate", {"lines_plain": lines(4), "lines_consolidated": lines(2)}, MET),
    (("769",), "consolidation-in-line", {"lines_plain": lines(4), "lines_consolidated": lines(2)}, NOT_MET),
))
def test_I_A_5_prior_lines(policy, facts, expected):
    run(policy, "I.A.5", facts, expected)


@pytest.mark.parametrize("criterion, drug_class", [("I.A.5.a", "imid"), ("I.A.5.b", "proteasome-inhibitor"),
                                                   ("I.A.5.c", "anti-cd38")])
@pytest.mark.parametrize("policy", BOTH)
def test_I_A_5_a_b_c_drug_classes(policy, criterion, drug_class):
    others = tuple(c for c in ("imid", "proteasome-inhibitor", "anti-cd38") if c != drug_class)
    assert result(policy, criterion).status is MET
    missing = result(policy, criterion, lines_plain=lines(4, classes=others))
    assert missing.status is NOT_MET, "a history retrieved in full without the class contradicts it"
    assert missing.evidence, "the lines reviewed are cited"
    assert result(policy, criterion, lines_plain=NOT_SHOWN).status is UNKNOWN, "no therapy documented at all"
    assert result(policy, criterion, lines_plain=RETRIEVAL_FAILED).retrieval_failed
    assert result(policy, "I.A.5", lines_plain=lines(4, classes=others)).status is NOT_MET


def test_I_A_5_a_reason_names_only_the_agents_of_the_class():
    vrd = LineOfTherapy(1, date(2021, 1, 1), date(2021, 6, 1), ("bortezomib", "dexamethasone", "lenalidomide"),
                        frozenset({"imid", "proteasome-inhibitor"}), ("induction",), ("MedicationStatement/vrd",))
    facts = {"lines_plain": Observed(LinesOfTherapy(1, 1, (vrd,), vrd.classes))}
    assert result("481", "I.A.5.a", **facts).reason == "Prior immunomodulatory agent: lenalidomide"
    assert result("481", "I.A.5.b", **facts).reason == "Prior proteasome inhibitor: bortezomib"


def said(value_set: str, assertion: str) -> ConditionFinding:
    """An active entry recognised from its words (``Condition.code.text``) with what the words assert."""
    return replace(condition(value_set), code=Coded(None, None, f"{assertion} {value_set}"), assertion=assertion)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "none-retrieved-in-full", {}, MET),
    (BOTH, "epilepsy-history", {"conditions": Observed((condition("epilepsy", "inactive"),))}, NOT_MET),
    (BOTH, "parkinsons", {"conditions": Observed((condition("parkinsons-disease"),))}, NOT_MET),
    (("481",), "resolved-cns-myeloma-is-known", {"conditions": Observed((condition("cns-malignancy-involvement", "resolved"),))}, NOT_MET),
    (("769",), "resolved-cns-malignancy-not-active", {"conditions": Observed((condition("cns-malignancy-involvement", "resolved"),))}, MET),
    (("769",), "active-cns-malignancy", {"conditions": Observed((condition("cns-malignancy-involvement", "active"),))}, NOT_MET),
    (("769",), "cns-malignancy-status-missing", {"conditions": Observed((condition("cns-malignancy-involvement", None),))}, UNKNOWN),
    (BOTH, "rule-out-cns-involvement", {"conditions": Observed((said("cns-malignancy-involvement", "uncertain"),))}, UNKNOWN),
    (BOTH, "provisional-epilepsy", {"conditions": Observed((said("epilepsy", "uncertain"),))}, UNKNOWN),
    (BOTH, "history-of-epilepsy-text", {"conditions": Observed((said("epilepsy", "historical"),))}, NOT_MET),
    (("481",), "history-of-cns-involvement-text", {"conditions": Observed((said("cns-malignancy-involvement", "historical"),))}, NOT_MET),
    (("769",), "active-entry-saying-history-of-cns-involvement", {"conditions": Observed((said("cns-malignancy-involvement", "historical"),))}, UNKNOWN),
    (BOTH, "uncertain-and-present", {"conditions": Observed((said("epilepsy", "uncertain"), condition("dementia")))}, NOT_MET),
    (BOTH, "conditions-failed", {"conditions": RETRIEVAL_FAILED}, UNKNOWN),
))
def test_I_A_6_no_cns_involvement_or_pathology(policy, facts, expected):
    run(policy, "I.A.6", facts, expected)


def test_a_condition_recognised_from_text_is_cited_as_the_text_and_named_as_uncertain():
    got = run("481", "I.A.6", {"conditions": Observed((said("cns-malignancy-involvement", "uncertain"),))}, UNKNOWN)
    assert [(e.element, e.value) for e in got.evidence] == [
        ("Condition.code.text", "uncertain cns-malignancy-involvement")]
    assert "recorded as uncertain" in got.reason


# What the therapy facts answer when the record shows a CAR-T order but no administration (fhir_mappings.therapy).
ORDERED_ONLY = Unknown("the record suggests it but documents no administration: MedicationRequest/cilta-2025",
                       evidence=(Evidence("MedicationRequest/cilta-2025", "MedicationRequest completed: administration "
                                          "not documented", "ciltacabtagene autoleucel", date="2025-03-18"),))


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "none", {}, MET),
    (BOTH, "teclistamab", {"exposures": Observed((exposure("teclistamab", ("anti-bcma",)),))}, NOT_MET),
    (BOTH, "history-failed", {"exposures": RETRIEVAL_FAILED}, UNKNOWN),
    (BOTH, "daratumumab-is-not-anti-bcma", {"exposures": Observed((exposure("daratumumab", ("anti-cd38",)),))}, MET),
))
def test_I_A_7_no_prior_anti_bcma(policy, facts, expected):
    run(policy, "I.A.7", facts, expected)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "none", {}, MET),
    (BOTH, "prior-tisagenlecleucel", {"exposures": Observed((exposure("tisagenlecleucel", ("car-t-products",)),))}, NOT_MET),
    (("769",), "prior-abecma", {"exposures": Observed((exposure("idecabtagene vicleucel", ("car-t-products", "anti-bcma", "idecabtagene-vicleucel")),))}, NOT_MET),
    (BOTH, "history-failed", {"exposures": RETRIEVAL_FAILED}, UNKNOWN),
    # a CAR-T history code or administration procedure counts whatever the product, in both policies
    (BOTH, "z92-850-history-code", {"exposures": Observed((exposure("Z92.850", ("car-t-history",), "Condition/z"),))}, NOT_MET),
    (BOTH, "ordered-not-given", {"exposures": ORDERED_ONLY}, UNKNOWN),
))
def test_I_A_8_no_prior_car_t(policy, facts, expected):
    got = run(policy, "I.A.8", facts, expected)
    if expected is UNKNOWN:
        assert got.retrieval_failed is (facts["exposures"] is RETRIEVAL_FAILED)
        assert got.evidence == facts["exposures"].evidence


CARVYKTI_DRAFT = exposure("ciltacabtagene autoleucel", ("car-t-products",), "MedicationRequest/car-t-2")


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "none", {}, MET),
    (BOTH, "carvykti-co-signed", {"concurrent": Observed((CARVYKTI_DRAFT,))}, NOT_MET),
    (BOTH, "only-the-order-itself", {"concurrent": Observed((exposure("x", ("car-t-products",), "MedicationRequest/car-t-1"),))}, MET),
    (BOTH, "requests-failed", {"concurrent": RETRIEVAL_FAILED}, UNKNOWN),
))
def test_I_A_9_no_concurrent_car_t(policy, facts, expected):
    run(policy, "I.A.9", facts, expected)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (("481",), "510", {"dose": Observed(CellDose(510.0))}, MET),
    (("481",), "511", {"dose": Observed(CellDose(511.0))}, NOT_MET),
    (("769",), "115", {"dose": Observed(CellDose(115.0))}, MET),
    (("769",), "116", {"dose": Observed(CellDose(116.0))}, NOT_MET),
    (("769",), "per-kg", {"dose": Observed(CellDose(115.0, per_kg=True))}, UNKNOWN),
    (BOTH, "no-dose", {"dose": NOT_SHOWN}, UNKNOWN),
))
def test_I_A_10_dose_limit(policy, facts, expected):
    run(policy, "I.A.10", facts, expected)


PRIOR_ABECMA = Observed((exposure("idecabtagene vicleucel", ("car-t-products", "anti-bcma", "idecabtagene-vicleucel"),
                                  "Procedure/infusion-1"),))


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "first-dose", {}, MET),
    (("481",), "prior-abecma-infusion", {"exposures": PRIOR_ABECMA}, NOT_MET),
    (("769",), "abecma-is-not-kite-772", {"exposures": PRIOR_ABECMA}, MET),
    (("769",), "prior-kite-772", {"exposures": Observed((exposure("anitocabtagene autoleucel", ("car-t-products", "anitocabtagene-autoleucel")),))}, NOT_MET),
    (BOTH, "history-failed", {"exposures": RETRIEVAL_FAILED}, UNKNOWN),
))
def test_II_A_1_continued_therapy_one_dose_only(policy, facts, expected):
    got = run(policy, "II.A.1", facts, expected)
    if expected is NOT_MET:
        assert got.evidence and "one dose only" in got.reason


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "myeloma", {}, MET),
    (BOTH, "lymphoma", {"diagnosis": not_myeloma(LYMPHOMA)}, NOT_MET),
    (BOTH, "not-shown", {"diagnosis": not_myeloma()}, UNKNOWN),
))
def test_III_A_non_fda_approved_indication(policy, facts, expected):
    run(policy, "III.A", facts, expected)


@pytest.mark.parametrize("policy, facts, expected", cases(
    (BOTH, "none", {}, MET),
    (BOTH, "seizure-history", {"conditions": Observed((condition("seizure", "resolved"),))}, NOT_MET),
    (("769",), "cerebrovascular-ischemia", {"conditions": Observed((condition("cerebrovascular-ischemia"),))}, NOT_MET),
    (BOTH, "epilepsy-is-a-seizure-history", {"conditions": Observed((condition("epilepsy", "inactive"),))}, NOT_MET),
    (("481",), "cerebrovascular-ischemia-not-listed", {"conditions": Observed((condition("cerebrovascular-ischemia"),))}, MET),
    (("769",), "prior-cns-involvement", {"conditions": Observed((condition("cns-malignancy-involvement", "resolved"),))}, NOT_MET),
    (("769",), "meningeal-signs", {"conditions": Observed((condition("meningeal-involvement", "active"),))}, NOT_MET),
    (("769",), "meningeal-resolved", {"conditions": Observed((condition("meningeal-involvement", "resolved"),))}, MET),
    (("769",), "meningeal-signs-suspected", {"conditions": Observed((said("meningeal-involvement", "uncertain"),))}, UNKNOWN),
    (("481",), "dementia", {"conditions": Observed((condition("dementia"),))}, NOT_MET),
    (BOTH, "conditions-failed", {"conditions": RETRIEVAL_FAILED}, UNKNOWN),
))
def test_III_B_cns_exclusion(policy, facts, expected):
    run(policy, "III.B", facts, expected)


@pytest.mark.parametrize("policy", BOTH)
@pytest.mark.parametrize("request_, expected", [
    (TocilizumabRequest(800.0, 4), MET),
    (TocilizumabRequest(801.0, 4), NOT_MET),
    (TocilizumabRequest(800.0, 5), NOT_MET),
    (TocilizumabRequest(None, 4), UNKNOWN),
    (TocilizumabRequest(560.0, None), UNKNOWN),
])
def test_tocilizumab_allowance(policy, request_, expected):
    decision = evaluate_tocilizumab(POLICIES[policy], replace(FakeFacts(), tocilizumab=Observed(request_)),
                                    TOCILIZUMAB_ORDER, AS_OF)
    assert decision.order_kind == "tocilizumab" and decision.order == "MedicationRequest/toc-1"
    assert [c.id for c in decision.criteria] == ["I.A.approval.tocilizumab"]
    assert decision.criteria[0].status is expected
