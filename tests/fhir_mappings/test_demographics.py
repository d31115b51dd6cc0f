"""Age on as_of from birthDate: a partial birthDate gives the range of ages it allows."""

from __future__ import annotations

from datetime import date

from fhir_samples import AS_OF, PATIENT, patient
from hypothesis import given
from hypothesis import strategies as st

from fhir_mappings.demographics import age_bounds
from fhir_mappings.facts import AgeBounds, Observed, RetrievalOutcome, RetrievalState, Unknown
from fhir_mappings.patient_record import PatientRecord


def age(birth, as_of=AS_OF, **kw):
    return age_bounds(PatientRecord.build(PATIENT, [patient(birth)], **kw), as_of)


def test_full_birth_date_gives_one_age_with_evidence():
    fact = age("1958-03-14")
    assert fact == Observed(AgeBounds(68, 68), fact.evidence)
    assert fact.evidence[0].reference == "Patient/p1" and fact.evidence[0].value == "1958-03-14"


def test_birthday_boundary():
    assert age("2008-11-24").value == AgeBounds(18, 18)
    assert age("2008-11-25").value == AgeBounds(17, 17)


def test_year_only_birth_date_gives_the_range_of_ages():
    assert age("1960").value == AgeBounds(65, 66)
    assert age("2008").value == AgeBounds(17, 18)  # straddles 18 on 2026-11-24


def test_year_month_birth_date():
    assert age("1960-03", as_of=date(2026, 11, 24)).value == AgeBounds(66, 66)
    assert age("2008-11").value == AgeBounds(17, 18)  # born 2008-11-01 .. 2008-11-30
    assert age("2008-10").value == AgeBounds(18, 18)


def test_partial_birth_date_reaching_past_as_of_ends_on_as_of():
    assert age("2026-11").value == AgeBounds(0, 0)


def test_missing_patient_birth_date_and_failed_retrieval():
    assert "missing" in age(None).reason
    empty = PatientRecord.build(PATIENT, [])
    assert "no Patient" in age_bounds(empty, AS_OF).reason
    failed = PatientRecord.build(PATIENT, [], {"Patient": RetrievalOutcome(RetrievalState.FAILED, "http-5xx")})
    fact = age_bounds(failed, AS_OF)
    assert isinstance(fact, Unknown) and fact.retrieval_failed and "http-5xx" in fact.reason


def test_birth_date_after_as_of_is_unknown():
    assert "after" in age("2027-01-01").reason
    assert "after" in age("2027").reason


@given(born=st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 11, 24)),
       as_of=st.dates(min_value=date(2026, 11, 24), max_value=date(2030, 12, 31)))
def test_a_truncated_birth_date_always_brackets_the_true_age(born, as_of):
    true_age = age(born.isoformat(), as_of).value.minimum
    for truncated in (born.isoformat()[:7], born.isoformat()[:4]):
        bounds = age(truncated, as_of).value
        assert bounds.minimum <= true_age <= bounds.maximum <= bounds.minimum + 1
