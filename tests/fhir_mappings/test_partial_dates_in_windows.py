"""Partial dates where a window is judged: lab lookback windows, the progression series, the last dose.

A result or a dose dated only to the month ("2026-10", as many EHRs send a result keyed in from an
outside report, or a regimen's end remembered by the patient) is judged on every day it may have been:
inside a window when all of them are, outside when none are, and otherwise unknown, never dropped and
never counted.
"""

from __future__ import annotations

from datetime import date

from fhir_samples import KAPPA, LAMBDA, PATIENT, RATIO, SERUM_M, URINE_24H, lab, searchset
from test_lines_of_therapy import statement
from test_progression import STABLE, light_chain_only_record, serum_series, status

from fhir_mappings.facts import DateSpan, Observed, Unknown
from fhir_mappings.labs import free_light_chains, serum_m_protein
from fhir_mappings.lines_of_therapy import last_regimen_last_dose
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.progression import latest_disease_assessment, progressive_disease


def record(*resources):
    return PatientRecord.build(PATIENT, [searchset(*resources)])


def outside_report(rid, value, month):
    """An SPEP keyed in from an outside lab's report: the month is all the EHR recorded."""
    return lab(rid, SERUM_M, value, "g/dL", when=month)


# ------------------------------------------------------------------------------ lab lookback windows


def test_a_result_of_a_month_wholly_inside_the_window_is_the_latest_result():
    fact = serum_m_protein(record(outside_report("ext", 0.8, "2026-10")), date(2026, 11, 30), 60)
    assert isinstance(fact, Observed) and fact.value.value == 0.8 and fact.value.reference == "Observation/ext"
    assert fact.value.effective_span == DateSpan(date(2026, 10, 1), date(2026, 10, 31))
    assert fact.evidence[0].date == "2026-10-01/2026-10-31"  # not a day the record never gave


def test_a_result_of_a_month_wholly_outside_the_window_is_not_in_it():
    fact = serum_m_protein(record(outside_report("ext", 0.8, "2026-09")), date(2026, 11, 24), 30)
    assert isinstance(fact, Unknown) and "no serum m-protein result" in fact.reason.lower()


def test_a_result_straddling_the_window_with_nothing_else_is_unknown_citing_it():
    fact = serum_m_protein(record(outside_report("ext", 0.8, "2026-10")), date(2026, 11, 10), 30)
    assert isinstance(fact, Unknown) and "2026-10-01/2026-10-31" in fact.reason
    assert fact.evidence[0].reference == "Observation/ext" and fact.evidence[0].date == "2026-10"


def test_a_straddling_result_that_could_be_later_than_the_dated_one_is_unknown():
    """Ordered on 2026-11-10: an outside SPEP of "2026-11" may be from 11-15 (after the order date) or
    from 11-02, after the in-house 0.9 g/dL of 10-20: it could be the latest result and contradict it."""
    rec = record(lab("inhouse", SERUM_M, 0.9, "g/dL", when="2026-10-20T08:10:00-05:00"),
                 outside_report("ext", 0.2, "2026-11"))
    fact = serum_m_protein(rec, date(2026, 11, 10), 30)
    assert isinstance(fact, Unknown) and fact.evidence[0].reference == "Observation/ext"


def test_a_straddling_result_earlier_than_the_dated_one_comes_along_to_be_weighed():
    rec = record(outside_report("ext", 0.7, "2026-10"), lab("inhouse", SERUM_M, 0.4, "g/dL", when="2026-11-20"))
    fact = serum_m_protein(rec, date(2026, 11, 24), 30)
    assert fact.value.reference == "Observation/inhouse"
    assert [m.reference for m in fact.value.others_in_window] == ["Observation/ext"]


def test_a_period_with_only_a_partial_start_is_a_span():
    obs = lab("period", SERUM_M, 0.8, "g/dL", when=None)
    del obs["effectiveDateTime"]
    obs["effectivePeriod"] = {"start": "2026-10"}
    fact = serum_m_protein(record(obs), date(2026, 11, 10), 30)
    assert isinstance(fact, Unknown) and fact.evidence[0].reference == "Observation/period"


def flc_draw(month_or_day, kappa, lam, prefix):
    return [lab(f"{prefix}-k", KAPPA, kappa, "mg/L", when=month_or_day),
            lab(f"{prefix}-l", LAMBDA, lam, "mg/L", when=month_or_day),
            lab(f"{prefix}-r", RATIO, round(kappa / lam, 3), "{ratio}", when=month_or_day)]


def test_an_flc_draw_of_a_month_pairs_with_itself_and_is_judged_on_its_span():
    draw = flc_draw("2026-10", 412, 8.1, "ext")
    inside = free_light_chains(record(*draw), date(2026, 11, 30), 60)
    assert inside.value.ratio == round(412 / 8.1, 3) and inside.value.involved == "kappa"
    straddling = free_light_chains(record(*draw), date(2026, 11, 10), 30)
    assert isinstance(straddling, Unknown)
    assert {e.reference for e in straddling.evidence} == {"Observation/ext-k", "Observation/ext-l", "Observation/ext-r"}


def test_an_flc_result_of_a_month_does_not_join_a_draw_of_a_day_in_that_month():
    rec = record(*flc_draw("2026-11-20T07:30:00-05:00", 412, 8.1, "day"), lab("month-l", LAMBDA, 30, "mg/L", when="2026-11"))
    fact = free_light_chains(rec, date(2026, 11, 30), 30)
    assert fact.value.lambda_mg_dl == 0.81 and "Observation/month-l" not in fact.value.references


# ------------------------------------------------------------------------------ progression series


def test_a_partial_dated_result_is_not_placed_in_the_series_and_does_not_undo_a_found_rise():
    """Adding a point can only lower a nadir: a found rise on the same marker stands."""
    fact = progressive_disease(record(*serum_series(2.5, 2.0, 2.6), outside_report("ext", 3.5, "2026-04")),
                               date(2026, 11, 24))
    assert isinstance(fact, Observed) and fact.value.assessed == date(2026, 7, 6)


def test_no_progression_found_cites_the_partial_dated_results():
    fact = progressive_disease(record(*serum_series(2.5, 2.4), outside_report("ext", 3.5, "2026-08")),
                               date(2026, 11, 24))
    assert isinstance(fact, Unknown) and "month or year" in fact.reason
    assert [e.reference for e in fact.evidence] == ["Observation/ext"]


def test_a_partial_dated_measurable_serum_result_makes_a_dflc_progression_unknown():
    """dFLC counts only when serum M-protein is not measurable: a 1.4 g/dL result of "2026-07" may lie
    in the series and would close that gate."""
    resources = light_chain_only_record()
    assert progressive_disease(record(*resources), date(2026, 11, 24)).value.marker == "dflc"
    fact = progressive_disease(record(*resources, outside_report("ext", 1.4, "2026-07")), date(2026, 11, 24))
    assert isinstance(fact, Unknown) and "dFLC" in fact.reason
    assert "Observation/ext" in {e.reference for e in fact.evidence}
    low = progressive_disease(record(*resources, outside_report("ext", 0.3, "2026-07")), date(2026, 11, 24))
    assert low.value.marker == "dflc"  # a value under the measurable level cannot close the gate
    urine = lab("ext-u", URINE_24H, 450, "mg/(24.h)", when="2026-07")
    assert isinstance(progressive_disease(record(*resources, urine), date(2026, 11, 24)), Unknown)


def test_a_documented_status_of_a_month_keeps_its_span():
    worse = {"coding": [{"system": "http://snomed.info/sct", "code": "271299001", "display": "Patient's condition worsened"}]}
    fact = progressive_disease(record(status("ds", worse, when="2026-10")), date(2026, 11, 24))
    assert fact.value.assessed_span == DateSpan(date(2026, 10, 1), date(2026, 10, 31))
    this_month = progressive_disease(record(status("ds", worse, when="2026-11")), date(2026, 11, 24))
    assert this_month.value.assessed_span == DateSpan(date(2026, 11, 1), date(2026, 11, 24))
    assert isinstance(progressive_disease(record(status("ds", worse, when="2026-12")), date(2026, 11, 24)), Unknown)


def test_a_stable_status_is_the_latest_assessment_only_when_certainly_after_the_progression():
    rises = serum_series(2.5, 2.0, 2.6)  # progression on 2026-07-06
    same_month = latest_disease_assessment(record(*rises, status("ds", STABLE, when="2026-07")), date(2026, 11, 24))
    assert same_month.value.progressive is True
    later = latest_disease_assessment(record(*rises, status("ds", STABLE, when="2026-08")), date(2026, 11, 24))
    assert later.value.progressive is False


# ------------------------------------------------------------------------------ last dose


def test_the_last_dose_of_a_regimen_ended_in_a_month_is_that_month():
    rec = record(statement("pom", "pomalidomide", "2026-03-02", "2026-09"),
                 statement("dex", "dexamethasone", "2026-03-02", "2026-09-14"))
    fact = last_regimen_last_dose(rec, date(2026, 11, 24))
    assert fact.value == DateSpan(date(2026, 9, 14), date(2026, 9, 30))
    assert fact.evidence[0].reference == "MedicationStatement/pom" and fact.evidence[0].date == "2026-09-01/2026-09-30"


def test_the_last_dose_of_an_exposure_known_only_by_its_start_month():
    given = {"resourceType": "MedicationAdministration", "id": "dara", "status": "completed",
             "subject": {"reference": f"Patient/{PATIENT}"},
             "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                       "code": "1721947", "display": "daratumumab"}]},
             "effectiveDateTime": "2026-10"}
    fact = last_regimen_last_dose(record(given), date(2026, 11, 24))
    assert fact.value == DateSpan(date(2026, 10, 1), date(2026, 10, 31))
