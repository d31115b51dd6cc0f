"""Age on the decision date from ``Patient.birthDate``, never more precise than the record.

A partial birth date is a range of possible birthdays: ``1960`` on 2026-11-24 means age 65 or 66, and
``1960-03`` means 66 whatever the day. ``age_bounds`` gives the youngest and oldest age the birthDate
allows; an age criterion is then decided whenever the whole range is on one side of its threshold (65 ..
66 is at least 18; 16 .. 17 is not) and unknown only when the range straddles it.
"""

from __future__ import annotations

from datetime import date

from fhir_mappings.facts import AgeBounds, Evidence, Fact, Observed, Unknown
from fhir_mappings.parsing import parse_date
from fhir_mappings.patient_record import PatientRecord


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def age_bounds(record: PatientRecord, as_of: date) -> Fact[AgeBounds]:
    """The youngest and oldest age on ``as_of`` that ``birthDate`` allows, citing the birthDate. The
    patient was born by ``as_of``, so a span reaching past it ends there; one wholly after it is an
    error in the record and gives no age."""
    patients = record.of_type("Patient")
    outcome = record.retrieval("Patient")
    if not patients:
        if not outcome.usable_in_full:
            return Unknown(f"Patient could not be retrieved ({outcome.reason or outcome.state.value})", True)
        return Unknown("no Patient resource for the hook's patient")
    patient = patients[0]
    reference = record.reference_of(patient)
    if not record.well_formed(patient):
        return Unknown("Patient resource does not validate", evidence=(Evidence(reference, "Patient"),))
    raw = patient.get("birthDate")
    span = parse_date(raw)
    evidence = (Evidence(reference, "Patient.birthDate", raw if isinstance(raw, str) else None),)
    if span is None:
        return Unknown("Patient.birthDate is missing", evidence=evidence)
    if span.earliest > as_of:
        return Unknown(f"Patient.birthDate is after {as_of.isoformat()}", evidence=evidence)
    return Observed(AgeBounds(_age(min(span.latest, as_of), as_of), _age(span.earliest, as_of)), evidence)
