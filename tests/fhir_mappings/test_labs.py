"""Latest serum/urine M-protein and FLC assay within a lookback window."""

from __future__ import annotations

import pytest
from fhir_samples import AS_OF, INTERP, KAPPA, LAMBDA, PATIENT, RATIO, SERUM_M, URINE_24H, lab, searchset

from fhir_mappings.facts import Observed, RetrievalOutcome, RetrievalState, Unknown
from fhir_mappings.labs import free_light_chains, serum_m_protein, urine_m_protein_24h
from fhir_mappings.patient_record import PatientRecord


def record(*resources, **kw):
    return PatientRecord.build(PATIENT, [searchset(*resources)], **kw)


def test_latest_serum_m_protein_in_window_converted_from_g_per_l():
    rec = record(
        lab("old", SERUM_M, 2.0, "g/dL", when="2026-09-01"),
        lab("latest", SERUM_M, 8, "g/L", when="2026-11-20T07:05:00-06:00"),
        lab("earlier", SERUM_M, 0.4, "g/dL", when="2026-11-02"),
        lab("future", SERUM_M, 3.0, "g/dL", when="2026-11-30"),
    )
    fact = serum_m_protein(rec, AS_OF, 30)
    assert isinstance(fact, Observed)
    assert (fact.value.value, fact.value.unit, fact.value.reference) == (0.8, "g/dL", "Observation/latest")
    assert (fact.evidence[0].value, fact.evidence[0].unit, fact.evidence[0].date) == ("8", "g/L", "2026-11-20")


def test_no_result_in_window_is_unknown():
    fact = serum_m_protein(record(lab("old", SERUM_M, 2.0, "g/dL", when="2026-09-01")), AS_OF, 30)
    assert isinstance(fact, Unknown) and not fact.retrieval_failed and "30 days" in fact.reason


def test_missing_unit_is_unknown_with_the_raw_value_not_a_guess():
    fact = serum_m_protein(record(lab("nounit", SERUM_M, 1.2)), AS_OF, 30)
    assert isinstance(fact, Unknown) and "no unit" in fact.reason
    assert fact.evidence[0].reference == "Observation/nounit" and fact.evidence[0].value == "1.2"


def test_display_only_unit_and_loinc_in_second_position_are_read():
    fact = serum_m_protein(record(lab("epic", SERUM_M, 0.7, "g/dL", code_key="unit")), AS_OF, 30)
    assert fact.value.value == 0.7


def test_malformed_latest_result_is_skipped_for_the_previous_one():
    rec = record(lab("ok", SERUM_M, 0.9, "g/dL", when="2026-11-01"),
                 lab("broken", SERUM_M, 1.0, "g/dL", when="2026-11-20", effectiveDateTime="2026-11-20", status="final",
                     interpretation="H"))
    fact = serum_m_protein(rec, AS_OF, 30)
    assert fact.value.reference == "Observation/ok"
    assert any(i.reference == "Observation/broken" and i.code == "malformed" for i in rec.issues)


def test_urine_24h_amount_and_spot_concentration():
    assert urine_m_protein_24h(record(lab("u", URINE_24H, 0.35, "g/(24.h)")), AS_OF, 30).value.value == 350.0
    spot = urine_m_protein_24h(record(lab("spot", URINE_24H, 18, "mg/dL")), AS_OF, 30)
    assert isinstance(spot, Unknown) and "not a 24-hour amount" in spot.reason


def test_failed_or_partial_observation_retrieval():
    failed = record(lab("s", SERUM_M, 1.1, "g/dL"), retrieval={"Observation": RetrievalOutcome(RetrievalState.FAILED, "timeout")})
    fact = serum_m_protein(failed, AS_OF, 30)
    assert isinstance(fact, Unknown) and fact.retrieval_failed and fact.evidence[0].reference == "Observation/s"
    empty = record(retrieval={"Observation": RetrievalOutcome(RetrievalState.PARTIAL, "page-cap")})
    assert serum_m_protein(empty, AS_OF, 30).retrieval_failed


def flc(kappa, lam, ratio, when="2026-11-10T09:00:00Z", specimen=None, ratio_extra=None, unit="mg/L"):
    extra = {"specimen": {"reference": specimen}} if specimen else {}
    tag = (specimen or "none").replace("/", "-")
    out = []
    if kappa is not None:
        out.append(lab(f"k-{when[:10]}-{tag}", KAPPA, kappa, unit, when=when, **extra))
    if lam is not None:
        out.append(lab(f"l-{when[:10]}-{tag}", LAMBDA, lam, unit, when=when, **extra))
    if ratio is not None:
        out.append(lab(f"r-{when[:10]}-{tag}", RATIO, ratio, "{ratio}", when=when, **extra, **(ratio_extra or {})))
    return out


def test_high_ratio_means_kappa_involved_in_mg_per_dl():
    fact = free_light_chains(record(*flc(250, 10, 25.0)), AS_OF, 30)
    v = fact.value
    assert (v.involved, v.involved_mg_dl, v.ratio_abnormal, v.ratio_abnormal_basis) == ("kappa", 25.0, True, "default 0.26-1.65")
    assert len(fact.evidence) == 3


def test_low_ratio_means_lambda_involved():
    v = free_light_chains(record(*flc(5, 300, 0.0167)), AS_OF, 30).value
    assert (v.involved, v.involved_mg_dl) == ("lambda", 30.0)


def test_interpretation_wins_over_default_range():
    normal = {"interpretation": [{"coding": [{"system": INTERP, "code": "N"}]}]}
    v = free_light_chains(record(*flc(18, 10, 1.8, ratio_extra=normal)), AS_OF, 30).value
    assert (v.ratio_abnormal, v.involved, v.ratio_abnormal_basis) == (False, None, "interpretation")
    high = {"interpretation": [{"coding": [{"system": INTERP, "code": "H", "display": "High"}]}]}
    assert free_light_chains(record(*flc(16, 10, 1.6, ratio_extra=high)), AS_OF, 30).value.involved == "kappa"


def test_reference_range_before_default():
    rng = {"referenceRange": [{"low": {"value": 0.37}, "high": {"value": 3.1}}]}
    v = free_light_chains(record(*flc(20, 10, 2.0, ratio_extra=rng)), AS_OF, 30).value
    assert (v.ratio_abnormal, v.ratio_abnormal_basis) == (False, "referenceRange")


def test_results_are_paired_by_date_and_specimen():
    rec = record(
        *flc(300, 10, None, when="2026-11-10T09:00:00Z", specimen="Specimen/a"),
        *flc(None, None, 30.0, when="2026-11-10T09:00:00Z", specimen="Specimen/a"),
        *flc(12, 11, 1.09, when="2026-10-01T09:00:00Z"),
    )
    v = free_light_chains(rec, AS_OF, 60).value
    assert (v.effective.isoformat(), v.ratio, v.kappa_mg_dl, v.involved) == ("2026-11-10", 30.0, 30.0, "kappa")


def test_results_from_different_specimens_are_not_mixed():
    rec = record(
        *flc(300, 10, None, when="2026-11-10T09:00:00Z", specimen="Specimen/a"),
        *flc(None, None, 1.0, when="2026-11-10T09:00:00Z", specimen="Specimen/b"),
    )
    v = free_light_chains(rec, AS_OF, 30).value
    assert v.kappa_mg_dl is None or v.ratio != 1.0


def test_ratio_computed_when_not_reported():
    v = free_light_chains(record(*flc(200, 10, None)), AS_OF, 30).value
    assert v.ratio == 20.0 and v.involved == "kappa" and "computed" in v.ratio_abnormal_basis


def test_flc_without_units_keeps_ratio_but_not_the_involved_value():
    v = free_light_chains(record(*flc(250, 10, 25.0, unit=None)), AS_OF, 30).value
    assert v.involved == "kappa" and v.involved_mg_dl is None and v.kappa_mg_dl is None


@pytest.mark.parametrize("days, expected", [(30, "Unknown"), (60, "Observed")])
def test_flc_lookback_window(days, expected):
    fact = free_light_chains(record(*flc(250, 10, 25.0, when="2026-10-01")), AS_OF, days)
    assert type(fact).__name__ == expected
