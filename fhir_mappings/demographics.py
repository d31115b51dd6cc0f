"""Age on the decision date from ``Patient.birthDate``, never more precise than the record.

A partial birth date is a range of possible birthdays: ``1960`` on 2026-11-24 means age 65 or 66.
``age_years`` is observed only when every possible birthday gives the same age; otherwise it is unknown
and its reason says the range (so a reader sees that, for example, an 18-year threshold is met either
way). ``age_bounds`` gives that range as a fact for a check that can decide with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fhir_mappings.facts import Evidence, Fact, Observed, Unknown
from fhir_mappings.parsing import parse_date
from fhir_mappings.patient_record import PatientRecord


@dataclass(frozen=True)
class AgeBounds:
    minimum: int
    maximum: int


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def age_bounds(record: PatientRecord, as_of: date) -> Fact[AgeBounds]:
    """The youngest and oldest age on ``as_of`` that ``birthDate`` allows."""
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
    return Observed(AgeBounds(_age(span.latest, as_of), _age(span.earliest, as_of)), evidence)


def age_years(record: PatientRecord, as_of: date) -> Fact[int]:
    """Age in whole years on ``as_of``; unknown (with the possible range) when birthDate is partial."""
    bounds = age_bounds(record, as_of)
    if isinstance(bounds, Unknown):
        return bounds
    low, high = bounds.value.minimum, bounds.value.maximum
    if low == high:
        return Observed(low, bounds.evidence)
    return Unknown(
        f"birthDate is partial: age on {as_of.isoformat()} is between {low} and {high} (at least {low})",
        evidence=bounds.evidence,
    )
