"""Age on as_of from birthDate, partial dates handled conservatively."""

from __future__ import annotations

from datetime import date

from fhir_samples import AS_OF, PATIENT, patient

from fhir_mappings.demographics import age_bounds, age_years
from fhir_mappings.facts import Observed, RetrievalOutcome, RetrievalState, Unknown
from fhir_mappings.patient_record import PatientRecord


def age(birth, as_of=AS_OF, **kw):
    return age_years(PatientRecord.build(PATIENT, [patient(birth)], **kw), as_of)


def test_full_birth_date_gives_the_age_with_evidence():
    fact = age("1958-03-14")
    assert fact == Observed(68, fact.evidence)
    assert fact.evidence[0].reference == "Patient/p1" and fact.evidence[0].value == "1958-03-14"


def test_birthday_boundary():
    assert age("2008-11-24").value == 18
    assert age("2008-11-25").value == 17


def test_year_only_birth_date_is_unknown_with_the_range():
    fact = age("1960")
    assert isinstance(fact, Unknown) and not fact.retrieval_failed
    assert "between 65 and 66" in fact.reason and "at least 65" in fact.reason
    bounds = age_bounds(PatientRecord.build(PATIENT, [patient("1960")]), AS_OF)
    assert (bounds.value.minimum, bounds.value.maximum) == (65, 66)


def test_partial_date_that_cannot_change_the_age_is_observed():
    assert age("1960-03", as_of=date(2026, 11, 24)).value == 66


def test_missing_patient_birth_date_and_failed_retrieval():
    assert "missing" in age(None).reason
    empty = PatientRecord.build(PATIENT, [])
    assert "no Patient" in age_years(empty, AS_OF).reason
    failed = PatientRecord.build(PATIENT, [], {"Patient": RetrievalOutcome(RetrievalState.FAILED, "http-5xx")})
    fact = age_years(failed, AS_OF)
    assert isinstance(fact, Unknown) and fact.retrieval_failed and "http-5xx" in fact.reason


def test_birth_date_after_as_of_is_unknown():
    assert "after" in age("2027-01-01").reason
