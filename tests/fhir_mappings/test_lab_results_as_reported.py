"""Lab results as LIS interfaces really send them: bounds (comparator), results with no value, status
variants, partial FLC draws, unit spellings -- read into facts (fhir_mappings.labs)."""

from __future__ import annotations

import pytest
from fhir_samples import AS_OF, INTERP, KAPPA, LAMBDA, PATIENT, RATIO, SERUM_M, UCUM, URINE_24H, lab, searchset

from fhir_mappings.facts import Observed, Unknown
from fhir_mappings.labs import free_light_chains, serum_m_protein, urine_m_protein_24h
from fhir_mappings.patient_record import PatientRecord

DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def record(*resources):
    return PatientRecord.build(PATIENT, [searchset(*resources)])


def bound(rid, loinc, comparator, value, unit, when="2026-11-18T07:40:00-05:00", **extra):
    """A result the lab reports as a bound: "<0.1 g/dL" below the limit of quantitation."""
    obs = lab(rid, loinc, value, unit, when=when, **extra)
    obs["valueQuantity"]["comparator"] = comparator
    return obs


def absent(rid, loinc, reason="not-performed", when="2026-11-20T09:12:00-05:00", **extra):
    """A result slot the LIS sends with no value: 'specimen hemolysed', 'test not performed'."""
    obs = lab(rid, loinc, None, when=when, **extra)
    del obs["valueQuantity"]
    obs["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": reason}], "text": "Specimen hemolyzed"}
    return obs


def test_a_bound_is_kept_as_a_bound_with_its_comparator_in_the_evidence():
    fact = serum_m_protein(record(bound("spep", SERUM_M, "<", 0.1, "g/dL")), AS_OF, 30)
    assert (fact.value.value, fact.value.comparator) == (0.1, "<")
    assert fact.evidence[0].value == "<0.1"


@pytest.mark.parametrize("later", [
    absent("dar", SERUM_M),
    absent("err", SERUM_M, reason="error"),
    lab("prelim", SERUM_M, 0.2, "g/dL", when="2026-11-20T09:12:00-05:00", status="preliminary"),
    lab("reg", SERUM_M, None, when="2026-11-20T09:12:00-05:00", status="registered"),
    lab("canc", SERUM_M, 0.2, "g/dL", when="2026-11-20T09:12:00-05:00", status="cancelled"),
    lab("eie", SERUM_M, 0.2, "g/dL", when="2026-11-20T09:12:00-05:00", status="entered-in-error"),
    lab("novalue", SERUM_M, None, "g/dL", when="2026-11-20T09:12:00-05:00"),  # valueQuantity with a unit only
], ids=["dataAbsentReason", "data-absent-error", "preliminary", "registered", "cancelled", "entered-in-error",
        "quantity-without-number"])
def test_a_later_result_with_no_value_or_not_final_never_hides_an_earlier_final_one(later):
    fact = serum_m_protein(record(lab("final", SERUM_M, 0.8, "g/dL", when="2026-11-05T08:00:00-05:00"), later), AS_OF, 30)
    assert isinstance(fact, Observed) and fact.value.reference == "Observation/final" and fact.value.value == 0.8


@pytest.mark.parametrize("status", ["amended", "corrected"])
def test_amended_and_corrected_results_are_final(status):
    rec = record(lab("first", SERUM_M, 0.4, "g/dL", when="2026-11-05"),
                 lab("fixed", SERUM_M, 0.9, "g/dL", when="2026-11-12", status=status))
    assert serum_m_protein(rec, AS_OF, 30).value.reference == "Observation/fixed"


def test_the_latest_result_comes_with_the_other_valid_results_of_the_window_newest_first():
    rec = record(
        lab("old", SERUM_M, 2.0, "g/dL", when="2026-09-01"),  # outside 30 days
        lab("a", SERUM_M, 0.6, "g/dL", when="2026-11-01"),
        bound("b", SERUM_M, "<", 0.1, "g/dL", when="2026-11-08"),
        lab("c", SERUM_M, 4, "g/L", when="2026-11-15"),
        absent("d", SERUM_M, when="2026-11-20"),
    )
    m = serum_m_protein(rec, AS_OF, 30).value
    assert (m.reference, m.value) == ("Observation/c", 0.4)
    assert [(o.reference, o.value, o.comparator) for o in m.others_in_window] == [
        ("Observation/b", 0.1, "<"), ("Observation/a", 0.6, None)]


def test_a_later_value_that_cannot_be_read_is_unknown_with_its_raw_value():
    rec = record(lab("ok", SERUM_M, 0.9, "g/dL", when="2026-11-05"),
                 lab("odd", SERUM_M, 9, "g%", when="2026-11-19", code_key="unit"))
    fact = serum_m_protein(rec, AS_OF, 30)
    assert isinstance(fact, Unknown) and (fact.evidence[0].value, fact.evidence[0].unit) == ("9", "g%")


@pytest.mark.parametrize("value, unit, code_key, expected", [
    (0.7, "g/dl", "code", 0.7),  # UCUM: l is the litre too
    (7, "G/L", "unit", 0.7),  # HL7 v2 upper case
    (0.7, "gm/dL", "unit", 0.7),
    (0.7, "g/100 mL", "unit", 0.7),
])
def test_serum_unit_spellings_from_real_interfaces(value, unit, code_key, expected):
    fact = serum_m_protein(record(lab("s", SERUM_M, value, unit, code_key=code_key)), AS_OF, 30)
    assert fact.value.value == expected and fact.evidence[0].unit == unit


@pytest.mark.parametrize("unit", ["mg/24 hr", "mg/24h", "mg/(24.h)", "mg/d", "MG/24HR"])
def test_urine_unit_spellings_from_real_interfaces(unit):
    assert urine_m_protein_24h(record(lab("u", URINE_24H, 410, unit, code_key="unit")), AS_OF, 30).value.value == 410


# ------------------------------------------------------------------------------ free light chains

SPECIMEN = {"specimen": {"reference": "Specimen/blood-1120"}}


def draw(day, kappa=None, lam=None, ratio=None, status="final", unit="mg/L", **extra):
    """One FLC draw as an LIS sends it: three Observations of one specimen; a part is None when not
    resulted, a (comparator, value) pair when reported as a bound."""
    out = []
    for part, loinc, value, u in (("k", KAPPA, kappa, unit), ("l", LAMBDA, lam, unit), ("r", RATIO, ratio, "{ratio}")):
        if value is None:
            continue
        comparator, number = value if isinstance(value, tuple) else (None, value)
        obs = lab(f"{part}-{day}", loinc, number, u, when=f"{day}T07:30:00-05:00", status=status,
                  specimen={"reference": f"Specimen/{day}"}, **extra)
        if comparator:
            obs["valueQuantity"]["comparator"] = comparator
        out.append(obs)
    return out


def test_a_later_partial_draw_does_not_hide_an_earlier_complete_one():
    rec = record(*draw("2026-11-02", 420, 9.5, 44.2),
                 *draw("2026-11-16", 460), *draw("2026-11-16", lam=10.1, ratio=45.5, status="preliminary"))
    fact = free_light_chains(rec, AS_OF, 30)
    v = fact.value
    assert (v.effective.isoformat(), v.involved, v.involved_mg_dl) == ("2026-11-02", "kappa", 42.0)
    assert {e.reference for e in fact.evidence} == {"Observation/k-2026-11-02", "Observation/l-2026-11-02",
                                                    "Observation/r-2026-11-02"}
    assert [(o.effective.isoformat(), o.kappa_mg_dl, o.ratio) for o in v.others_in_window] == [("2026-11-16", 46.0, None)]


def test_a_draw_with_a_chain_absent_is_partial():
    rec = record(*draw("2026-11-02", 420, 9.5, 44.2), *draw("2026-11-16", 460, ratio=47.0),
                 absent("l-absent", LAMBDA, when="2026-11-16T07:30:00-05:00", specimen={"reference": "Specimen/2026-11-16"}))
    assert free_light_chains(rec, AS_OF, 30).value.effective.isoformat() == "2026-11-02"


def test_only_partial_draws_the_latest_is_reported():
    rec = record(*draw("2026-11-02", 420), *draw("2026-11-16", ratio=45.0))
    v = free_light_chains(rec, AS_OF, 30).value
    assert (v.effective.isoformat(), v.ratio, v.kappa_mg_dl) == ("2026-11-16", 45.0, None)


def test_uninvolved_chain_below_the_limit_gives_a_bounded_computed_ratio():
    v = free_light_chains(record(*draw("2026-11-10", 250, ("<", 1.5))), AS_OF, 30).value
    assert (v.ratio, v.ratio_comparator, v.ratio_abnormal, v.involved, v.involved_mg_dl) == (166.6667, ">", True, "kappa", 25.0)


def test_chains_bounded_the_same_way_give_no_ratio():
    v = free_light_chains(record(*draw("2026-11-10", ("<", 1.5), ("<", 1.5))), AS_OF, 30).value
    assert v.ratio is None and v.ratio_abnormal is None


@pytest.mark.parametrize("ratio, abnormal, involved", [
    ((">", 100), True, "kappa"),  # above the analytical range: high whatever the exact value
    (("<", 0.01), True, "lambda"),
    ((">", 1.2), None, None),  # within the range, or above it: not judged
    (("<=", 0.25), True, "lambda"),
    (("<=", 0.26), None, None),  # exactly 0.26 is normal
    ((">=", 1.65), None, None),  # exactly 1.65 is normal
])
def test_a_reported_ratio_bound_is_judged_only_as_far_as_it_reaches(ratio, abnormal, involved):
    v = free_light_chains(record(*draw("2026-11-10", 300, 2.0, ratio)), AS_OF, 30).value
    assert (v.ratio_abnormal, v.involved, v.ratio_comparator) == (abnormal, involved, ratio[0])


def test_the_labs_interpretation_judges_a_bounded_ratio():
    high = {"interpretation": [{"coding": [{"system": INTERP, "code": "H"}]}]}
    rec = record(*draw("2026-11-10", 300, 2.0), *draw("2026-11-10", ratio=(">", 1.2), **high))
    assert free_light_chains(rec, AS_OF, 30).value.ratio_abnormal is True


def test_an_involved_chain_above_the_range_keeps_its_bound():
    v = free_light_chains(record(*draw("2026-11-10", (">", 1500), 8.0, (">", 150))), AS_OF, 30).value
    assert (v.involved, v.involved_mg_dl, v.involved_comparator) == ("kappa", 150.0, ">")


def test_a_later_flc_value_that_cannot_be_read_is_unknown():
    rec = record(*draw("2026-11-02", 420, 9.5, 44.2), *draw("2026-11-16", 40, 1.0, 40.0, unit="mmol/L"))
    fact = free_light_chains(rec, AS_OF, 30)
    assert isinstance(fact, Unknown) and "mmol/L" in fact.reason


def test_ucum_code_and_display_both_sent_for_flc():
    obs = draw("2026-11-10", 300, 12, 25.0)
    for o in obs[:2]:
        o["valueQuantity"] = {"value": o["valueQuantity"]["value"], "unit": "mg/L", "system": UCUM, "code": "mg/l"}
    assert free_light_chains(record(*obs), AS_OF, 30).value.involved_mg_dl == 30.0
