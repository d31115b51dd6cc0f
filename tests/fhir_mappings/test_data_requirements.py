"""The fallback Observation query asks for every lab the facts read, derived from the lab modules."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from fhir_samples import AS_OF, BMPC, KAPPA, LAMBDA, LOINC, PATIENT, RATIO, SERUM_M, SNOMED, URINE_24H, lab, searchset

import fhir_mappings
from fhir_mappings import code_index
from fhir_mappings.clinical_facts import ClinicalFacts
from fhir_mappings.data_requirements import data_requirements, observation_codes, observation_value_sets
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.terminology import value_set

DATES = ["2026-03-02", "2026-05-04", "2026-07-06", "2026-09-07"]
ORDER = {
    "resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
    "subject": {"reference": f"Patient/{PATIENT}"},
    "medicationCodeableConcept": {"text": "ciltacabtagene autoleucel"},
}
# An argument for each parameter a fact takes (a new parameter name fails the test loudly).
ARGUMENTS = {
    "as_of": AS_OF, "within_days": 365, "order": ORDER, "draft_orders": (ORDER,),
    "value_sets": ("multiple-myeloma",), "consolidation_in_line": False,
}


def _record_reaching_every_lab() -> PatientRecord:
    """Serum and urine M-protein and free light chains all too low to measure, so progression goes on
    to bone-marrow plasma cells; and a documented disease status."""
    labs = [lab(f"s{i}", SERUM_M, 0.2, "g/dL", when=day) for i, day in enumerate(DATES)]
    labs += [lab(f"u{i}", URINE_24H, 50, "mg/(24.h)", when=day) for i, day in enumerate(DATES)]
    for i, day in enumerate(DATES):
        labs += [lab(f"k{i}", KAPPA, 15, "mg/L", when=day), lab(f"l{i}", LAMBDA, 12, "mg/L", when=day),
                 lab(f"r{i}", RATIO, 1.25, "{ratio}", when=day)]
    labs += [lab("bm0", BMPC, 20, "%", when=DATES[0]), lab("bm1", BMPC, 32, "%", when=DATES[3])]
    status = {
        "resourceType": "Observation", "id": "ds1", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "97509-4", "display": "Cancer disease progression"}]},
        "subject": {"reference": f"Patient/{PATIENT}"}, "effectiveDateTime": "2026-10-15",
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "359746009", "display": "Patient's condition stable"}]},
    }
    return PatientRecord.build(PATIENT, [searchset(*labs, status)])


def _observation_value_sets_read(monkeypatch) -> set[str]:
    """Ask every fact once and note the value sets any fact module selects Observations by."""
    read: set[str] = set()
    select = code_index.coded_in

    def spy(record, resource_type, element, value_set_id):
        if resource_type == "Observation":
            read.add(value_set_id)
        return select(record, resource_type, element, value_set_id)

    for info in pkgutil.iter_modules(fhir_mappings.__path__):
        module = importlib.import_module(f"fhir_mappings.{info.name}")
        if module is not code_index and getattr(module, "coded_in", None) is select:
            monkeypatch.setattr(module, "coded_in", spy)
    facts = ClinicalFacts(_record_reaching_every_lab())
    for name, method in inspect.getmembers(ClinicalFacts, inspect.isfunction):
        if not name.startswith("_"):
            parameters = list(inspect.signature(method).parameters)[1:]
            getattr(facts, name)(*(ARGUMENTS[p] for p in parameters))
    return read


def test_the_observation_query_asks_for_every_value_set_the_facts_read(monkeypatch):
    read = _observation_value_sets_read(monkeypatch)
    assert read == set(observation_value_sets())  # nothing left out, nothing asked for that no fact reads
    asked = set(observation_codes().split(","))
    for vs_id in read:
        codes = {f"{LOINC}|{code}" for code in value_set(vs_id).codes_for(LOINC)}
        assert codes and codes <= asked, vs_id


def test_the_observations_key_searches_by_those_codes():
    observations = next(r for r in data_requirements() if r.key == "observations")
    _, params = observations.query({"patientId": PATIENT})
    assert params["code"] == observation_codes() and params["patient"] == PATIENT
