"""IMWG progressive disease: worked series, only-if gates, documented disease status."""

from __future__ import annotations

import pytest
from fhir_samples import AS_OF, BMPC, KAPPA, LAMBDA, LOINC, PATIENT, RATIO, SERUM_M, SNOMED, URINE_24H, lab, searchset

from fhir_mappings.facts import Observed, RetrievalOutcome, RetrievalState, Unknown
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.progression import latest_disease_assessment, progressive_disease

DATES = ["2026-03-02", "2026-05-04", "2026-07-06", "2026-09-07", "2026-11-02"]


def serum_series(*values, unit="g/dL"):
    return [lab(f"s{i}", SERUM_M, v, unit, when=f"{DATES[i]}T08:00:00-05:00") for i, v in enumerate(values)]


def pd(*resources, **kw):
    return progressive_disease(PatientRecord.build(PATIENT, [searchset(*resources)], **kw), AS_OF)


@pytest.mark.parametrize(
    "values, is_pd",
    [
        ((1.5, 1.2, 1.6), False),  # +0.4 from a 1.2 nadir: under 0.5 absolute
        ((2.8, 2.4, 2.9), False),  # +0.5 from a 2.4 nadir: under 25 %
        ((2.5, 2.0, 2.6), True),  # +0.6 from a 2.0 nadir, +30 %
        ((2.5, 2.0, 2.5), True),  # exactly +0.5 and +25 %: ">=" per the policy
        ((3.0, 2.6), False),  # falling
    ],
)
def test_worked_serum_series(values, is_pd):
    fact = pd(*serum_series(*values))
    assert isinstance(fact, Observed) is is_pd
    if is_pd:
        assert fact.value.marker == "serum-m-protein" and fact.value.assessed.isoformat() == DATES[len(values) - 1]
        assert "nadir 2" in fact.value.basis
        assert {e.reference for e in fact.evidence} == {f"Observation/s{len(values) - 1}", "Observation/s1"}


def test_units_are_normalised_before_comparing():
    fact = pd(*serum_series(25, 20, unit="g/L"), lab("s9", SERUM_M, 2.6, "g/dL", when="2026-11-02"))
    assert isinstance(fact, Observed)  # 20 g/L nadir = 2.0 g/dL


def test_nadir_is_the_lowest_before_the_rise_and_confirmation_is_reported():
    fact = pd(*serum_series(3.0, 1.0, 2.0, 1.6, 2.2))
    assert fact.value.assessed.isoformat() == DATES[4] and "nadir 1 g/dL" in fact.value.basis
    assert fact.value.confirmed is True  # the assessment before (1.6 vs nadir 1.0) also met the rule
    single = pd(*serum_series(1.0, 1.6))
    assert single.value.confirmed is False


def test_urine_series():
    urine = [lab(f"u{i}", URINE_24H, v, "mg/(24.h)", when=DATES[i]) for i, v in enumerate((500, 400, 650))]
    fact = pd(*urine)
    assert fact.value.marker == "urine-m-protein" and "+250" in fact.value.basis


def flc_assay(i, kappa, lam):
    return [lab(f"k{i}", KAPPA, kappa, "mg/L", when=DATES[i]), lab(f"l{i}", LAMBDA, lam, "mg/L", when=DATES[i]),
            lab(f"r{i}", RATIO, round(kappa / lam, 3), "{ratio}", when=DATES[i])]


def light_chain_only_record(with_urine=True):
    resources = serum_series(0.2, 0.2, 0.2)
    if with_urine:
        resources += [lab(f"u{i}", URINE_24H, 50, "mg/(24.h)", when=DATES[i]) for i in range(3)]
    return resources + flc_assay(0, 400, 10) + flc_assay(1, 200, 10) + flc_assay(2, 320, 10)


def test_dflc_counts_only_when_serum_and_urine_are_not_measurable():
    fact = pd(*light_chain_only_record())
    assert fact.value.marker == "dflc"  # dFLC 19 -> 31 mg/dL: +12 (> 10), +63 %
    measurable_serum = serum_series(1.5, 1.5, 1.5) + light_chain_only_record()[3:]
    assert isinstance(pd(*measurable_serum), Unknown)


def test_dflc_without_urine_measurement_is_not_used():
    fact = pd(*light_chain_only_record(with_urine=False))
    assert isinstance(fact, Unknown) and "not both measured" in fact.reason


def test_bone_marrow_plasma_cells_only_when_nothing_else_is_measurable():
    base = serum_series(0.2, 0.2) + [lab(f"u{i}", URINE_24H, 50, "mg/d", when=DATES[i]) for i in range(2)]
    base += flc_assay(0, 15, 12) + flc_assay(1, 16, 12)
    marrow = [lab("bm0", BMPC, 20, "%", when=DATES[0]), lab("bm1", BMPC, 32, "%", when=DATES[3])]
    fact = pd(*base, *marrow)
    assert fact.value.marker == "bone-marrow-plasma-cells"
    flc_measurable = base[:4] + flc_assay(0, 400, 10) + flc_assay(1, 410, 10)
    assert isinstance(pd(*flc_measurable, *marrow), Unknown)


def status(rid, value, when="2026-10-15", code="97509-4"):
    return {
        "resourceType": "Observation", "id": rid, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code, "display": "Cancer disease progression"}]},
        "subject": {"reference": f"Patient/{PATIENT}"}, "effectiveDateTime": when, "valueCodeableConcept": value,
    }


def test_documented_disease_status():
    coded = status("ds1", {"coding": [{"system": SNOMED, "code": "271299001", "display": "Patient's condition worsened"}]})
    fact = pd(coded)
    assert fact.value.marker == "disease-status" and fact.value.assessed.isoformat() == "2026-10-15"
    assert fact.evidence[0].reference == "Observation/ds1"
    assert isinstance(pd(status("ds2", {"text": "Progressive disease (IMWG)"}, code="88040-1")), Observed)
    assert isinstance(pd(status("ds3", {"text": "No evidence of progression"})), Unknown)
    stable = {"coding": [{"system": SNOMED, "code": "359746009", "display": "Patient's condition stable"}]}
    assert isinstance(pd(status("ds4", stable)), Unknown)


STABLE = {"coding": [{"system": SNOMED, "code": "359746009", "display": "Patient's condition stable"}]}


def test_latest_assessment_is_a_documented_stable_status_after_the_last_progression():
    rec = PatientRecord.build(PATIENT, [searchset(*serum_series(2.0, 2.6), status("ds", STABLE, when="2026-11-09"))])
    latest = latest_disease_assessment(rec, AS_OF)
    assert latest.value.progressive is False and latest.value.assessed.isoformat() == "2026-11-09"
    assert latest.evidence[0].reference == "Observation/ds"
    assert progressive_disease(rec, AS_OF).value.progressive is True  # the earlier progression still stands


def test_latest_assessment_is_the_progression_when_it_is_later_or_nothing_else_is_documented():
    later_pd = [status("ds", STABLE, when="2026-08-01"), status("pd", {"text": "Progressive disease"})]
    rec = PatientRecord.build(PATIENT, [searchset(*later_pd)])
    assert latest_disease_assessment(rec, AS_OF).value.progressive is True
    assert isinstance(latest_disease_assessment(PatientRecord.build(PATIENT, [searchset()]), AS_OF), Unknown)


def test_latest_event_is_returned():
    fact = pd(*serum_series(2.0, 2.6), status("ds", {"text": "Progressive disease"}, when="2026-10-20"))
    assert fact.value.marker == "disease-status"


def test_partial_retrieval():
    partial = {"Observation": RetrievalOutcome(RetrievalState.PARTIAL, "page-cap")}
    found = pd(*serum_series(2.5, 2.0, 2.6), retrieval=partial)
    assert isinstance(found, Observed)  # progression found in partial data stands
    none = pd(*serum_series(2.5, 2.0), retrieval=partial)
    assert isinstance(none, Unknown) and none.retrieval_failed


# ------------------------------------------------------------------- bounds: "<x" and ">x" results


def bounded(rid, comparator, value, when, loinc=SERUM_M, unit="g/dL"):
    obs = lab(rid, loinc, value, unit, when=when)
    obs["valueQuantity"]["comparator"] = comparator
    return obs


def test_a_result_below_the_limit_serves_as_a_nadir_only():
    fact = pd(bounded("s0", "<", 0.1, DATES[0]), lab("s1", SERUM_M, 0.7, "g/dL", when=DATES[1]))
    assert fact.value.assessed.isoformat() == DATES[1] and "nadir at most 0.1 g/dL" in fact.value.basis
    assert isinstance(pd(lab("s0", SERUM_M, 1.0, "g/dL", when=DATES[0]), bounded("s1", "<", 2.0, DATES[1])), Unknown)


def test_a_result_above_the_range_serves_as_a_rising_result_only():
    fact = pd(lab("s0", SERUM_M, 2.0, "g/dL", when=DATES[0]), bounded("s1", ">", 3.0, DATES[1]))
    assert "serum M-protein at least 3 g/dL" in fact.value.basis
    assert isinstance(pd(bounded("s0", ">", 0.5, DATES[0]), lab("s1", SERUM_M, 1.2, "g/dL", when=DATES[1])), Unknown)


def test_dflc_from_an_uninvolved_chain_below_the_limit_spans_the_bound():
    def assay(i, kappa, lam):
        out = flc_assay(i, kappa, 10)
        out[1]["valueQuantity"].update({"value": lam, "comparator": "<"})
        del out[2]  # no reported ratio: computed from the chains, a bound
        return out

    base = serum_series(0.2, 0.2, 0.2) + [lab(f"u{i}", URINE_24H, 50, "mg/(24.h)", when=DATES[i]) for i in range(3)]
    # dFLC 38.5-40 mg/dL at nadir, 50.5-52: rise at least 50.5 - 40 = 10.5 (> 10)
    fact = pd(*base, *assay(0, 400, 15), *assay(1, 520, 15))
    assert fact.value.marker == "dflc" and "vs nadir at most 40 mg/dL" in fact.value.basis
    # 49.5-51 after a 38.5-40 nadir: at least +9.5, not certainly > 10
    assert isinstance(pd(*base, *assay(0, 400, 15), *assay(1, 510, 15)), Unknown)


# ------------------------------------------------- the nadir of the last regimen (Appendix D, class 3)

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def administered(rid, code, display, day):
    """An infusion as the EHR's medication administration record sends it."""
    return {
        "resourceType": "MedicationAdministration", "id": rid, "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{PATIENT}"}, "effectiveDateTime": f"{day}T10:15:00-05:00",
    }


def oral(rid, code, display, start, end):
    return {
        "resourceType": "MedicationStatement", "id": rid, "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{PATIENT}"}, "effectivePeriod": {"start": start, "end": end},
    }


def two_lines():
    """KRd from 2024-01 to 2024-09, then dara-Pd from 2025-01-10 (monthly daratumumab, daily pomalidomide)."""
    krd = [oral("carf", "1302966", "carfilzomib", "2024-01-08", "2024-09-02"),
           oral("len", "342369", "lenalidomide", "2024-01-08", "2024-09-02")]
    dara = [administered(f"dara{n}", "1721947", "daratumumab", f"{2025 + (n // 12)}-{n % 12 + 1:02d}-10") for n in range(22)]
    return krd + dara + [oral("pom", "1369713", "pomalidomide", "2025-01-10", "2026-10-20")]


def spep(values: dict[str, float]):
    return [lab(f"spep-{day}", SERUM_M, v, "g/dL", when=f"{day}T08:00:00-05:00") for day, v in values.items()]


FIRST_LINE = {"2024-01-02": 3.1, "2024-05-06": 0.4, "2024-08-05": 0.2, "2024-12-02": 0.9}


def test_a_rise_over_an_earlier_lines_nadir_is_not_progression_on_the_last_regimen():
    on_dara_pd = {"2025-01-06": 1.0, "2025-04-07": 0.7, "2025-10-06": 0.8, "2026-08-03": 0.9, "2026-11-02": 0.95}
    rec = PatientRecord.build(PATIENT, [searchset(*two_lines(), *spep(FIRST_LINE | on_dara_pd))])
    # against the whole history (KRd nadir 0.2 g/dL) 0.95 would be +0.75, +375 %
    fact = progressive_disease(rec, AS_OF)
    assert isinstance(fact, Unknown), fact


def test_progression_from_the_last_regimens_nadir():
    on_dara_pd = {"2025-01-06": 1.0, "2025-04-07": 0.7, "2026-08-03": 1.0, "2026-11-02": 1.3}
    rec = PatientRecord.build(PATIENT, [searchset(*two_lines(), *spep(FIRST_LINE | on_dara_pd))])
    fact = progressive_disease(rec, AS_OF)
    assert fact.value.assessed.isoformat() == "2026-11-02" and "vs nadir 0.7 g/dL on 2025-04-07" in fact.value.basis
    assert "measured on the last regimen, started 2025-01-10" in fact.value.basis
    assert {"Observation/spep-2026-11-02", "Observation/spep-2025-04-07"} <= {e.reference for e in fact.evidence}


def test_refractory_disease_rises_from_the_baseline_before_the_regimen_started():
    on_dara_pd = {"2025-01-06": 1.8, "2025-04-07": 2.0, "2025-06-02": 2.4}  # never responded
    rec = PatientRecord.build(PATIENT, [searchset(*two_lines(), *spep(FIRST_LINE | on_dara_pd))])
    fact = progressive_disease(rec, AS_OF)
    assert "vs nadir 1.8 g/dL on 2025-01-06" in fact.value.basis


def test_an_old_result_before_the_regimen_is_not_its_baseline():
    on_dara_pd = {"2025-04-07": 0.9, "2025-06-02": 1.1}  # the latest before the start is 2024-12-02 (39 days)
    rec = PatientRecord.build(PATIENT, [searchset(*two_lines(), *spep({"2024-08-05": 0.2, "2024-12-02": 0.5} | on_dara_pd))])
    assert isinstance(progressive_disease(rec, AS_OF), Unknown)


def test_without_documented_therapy_the_whole_history_is_the_series():
    rec = PatientRecord.build(PATIENT, [searchset(*spep(FIRST_LINE))])
    assert "nadir 0.2 g/dL on 2024-08-05" in progressive_disease(rec, AS_OF).value.basis
