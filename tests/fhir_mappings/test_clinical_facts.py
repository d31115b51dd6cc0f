"""ClinicalFacts over a realistic Epic-style record: every FactSource method answers, delegation works,
treatment history from the therapy module feeds the relapsed/refractory status."""

from __future__ import annotations

import inspect

from fhir_samples import AS_OF, ICD10CM, PATIENT, SERUM_M, condition, lab, patient, searchset

from fhir_mappings.clinical_facts import ClinicalFacts
from fhir_mappings.facts import AgeBounds, FactSource, Observed, RetrievalOutcome, RetrievalState, Unknown
from fhir_mappings.patient_record import PatientRecord

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def lenalidomide_statement():
    return {
        "resourceType": "MedicationStatement", "id": "len", "status": "completed",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "342369", "display": "lenalidomide"}]},
        "effectivePeriod": {"start": "2024-01-10", "end": "2025-06-01"},
    }


def facts(*resources, retrieval=None):
    return ClinicalFacts(PatientRecord.build(PATIENT, [searchset(patient(), *resources)], retrieval))


def test_clinical_facts_implements_every_fact_source_method():
    wanted = {n for n, _ in inspect.getmembers(FactSource, inspect.isfunction) if not n.startswith("_")}
    assert wanted <= set(dir(ClinicalFacts))


def test_c90_00_with_treatment_history_from_the_therapy_module_is_relapsed_refractory():
    f = facts(condition("mm", [(ICD10CM, "C90.00", "Multiple myeloma not having achieved remission")]), lenalidomide_statement())
    fact = f.myeloma_diagnosis(AS_OF)
    assert fact.value.relapsed_refractory is True and "anti-myeloma therapy" in fact.value.basis
    assert f.myeloma_diagnosis(AS_OF) == fact  # pure: same record, same answer
    untreated = facts(condition("mm", [(ICD10CM, "C90.00", "Multiple myeloma")]))
    assert untreated.myeloma_diagnosis(AS_OF).value.relapsed_refractory is None


def test_record_and_lab_facts_through_the_facade():
    f = facts(lab("s", SERUM_M, 1.4, "g/dL"), condition("epi", [(ICD10CM, "G40.909", "Epilepsy")]))
    assert f.age_bounds(AS_OF).value == AgeBounds(68, 68)
    assert f.serum_m_protein(AS_OF, 30).value.value == 1.4
    assert isinstance(f.urine_m_protein_24h(AS_OF, 30), Unknown)
    assert isinstance(f.free_light_chains(AS_OF, 30), Unknown)
    assert f.conditions_in(("epilepsy",), AS_OF).value[0].reference == "Condition/epi"
    assert isinstance(f.coverage(), Unknown)


def test_failed_observation_retrieval_makes_lab_facts_indeterminate_but_not_conditions():
    failed = {"Observation": RetrievalOutcome(RetrievalState.FAILED, "timeout")}
    f = facts(condition("epi", [(ICD10CM, "G40.909", "Epilepsy")]), retrieval=failed)
    assert f.serum_m_protein(AS_OF, 30).retrieval_failed
    assert f.progressive_disease(AS_OF).retrieval_failed
    assert isinstance(f.conditions_in(("epilepsy",), AS_OF), Observed)


def test_only_the_observations_a_fact_uses_are_validated():
    noise = [lab(f"n{i}", ("2345-7", "Glucose [Mass/volume] in Serum or Plasma"), 98, "mg/dL") for i in range(5000)]
    series = [lab(f"s{i}", SERUM_M, v, "g/dL", when=d) for i, (v, d) in enumerate([(2.5, "2026-06-01"), (2.0, "2026-08-01"), (2.6, "2026-11-01")])]
    record = PatientRecord.build(PATIENT, [searchset(*noise, *series)])
    f = ClinicalFacts(record)
    assert f.serum_m_protein(AS_OF, 30).value.value == 2.6
    assert f.progressive_disease(AS_OF).value.marker == "serum-m-protein"
    assert len(record._well_formed) == 3  # the serum results; none of the 5,000 glucose results
