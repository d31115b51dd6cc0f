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
