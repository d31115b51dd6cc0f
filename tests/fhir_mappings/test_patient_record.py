"""PatientRecord: Bundles of any type, patient filter, status filters, reference resolution, lazy validation."""

from __future__ import annotations

import pytest
from fhir_samples import PATIENT, SERUM_M, condition, lab, patient, searchset

from fhir_mappings.facts import RetrievalOutcome, RetrievalState
from fhir_mappings.parsing import MalformedResource, flatten, parse_date, validate
from fhir_mappings.patient_record import PatientRecord


def without_id(resource):
    return {k: v for k, v in resource.items() if k != "id"}


def ids(resources):
    return sorted(r.get("id") for r in resources)


def test_searchset_collection_and_transaction_bundles_are_flattened_with_full_urls():
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:0c3c4c1e-1111-4a4a-9b9b-000000000001", "resource": patient(),
             "request": {"method": "PUT", "url": f"Patient/{PATIENT}"}},
            {"fullUrl": "urn:uuid:0c3c4c1e-1111-4a4a-9b9b-000000000002",
             "resource": {**without_id(lab(None, SERUM_M, 1.1, "g/dL")), "subject": {"reference": "urn:uuid:0c3c4c1e-1111-4a4a-9b9b-000000000001"}},
             "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    collection = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": lab("o2", SERUM_M, 1.3, "g/dL")}]}
    record = PatientRecord.build(PATIENT, [transaction, collection, searchset(lab("o3", SERUM_M, 1.0, "g/dL"))])
    observations = record.of_type("Observation")
    assert len(observations) == 3
    no_id = next(o for o in observations if "id" not in o)
    assert record.reference_of(no_id) == "urn:uuid:0c3c4c1e-1111-4a4a-9b9b-000000000002"
    assert record.resolve("urn:uuid:0c3c4c1e-1111-4a4a-9b9b-000000000001")["id"] == PATIENT


def test_other_patients_resources_are_ignored_and_reported():
    record = PatientRecord.build(
        PATIENT,
        [searchset(patient(), patient(pid="p2"), lab("mine", SERUM_M, 1.0, "g/dL"), lab("theirs", SERUM_M, 3.0, "g/dL", subject="p2"),
                   {**lab("group", SERUM_M, 3.0, "g/dL"), "subject": {"reference": "Group/g1"}},
                   {**lab("nobody", SERUM_M, 3.0, "g/dL"), "subject": {"display": "someone"}})],
    )
    assert ids(record.of_type("Observation")) == ["mine"]
    assert ids(record.of_type("Patient")) == [PATIENT]
    codes = {(i.reference, i.code) for i in record.issues}
    assert ("Observation/theirs", "other-patient") in codes
    assert ("Observation/group", "other-patient") in codes
    assert ("Observation/nobody", "no-patient") in codes
    assert ("Patient/p2", "other-patient") in codes
    assert record.resolve("Observation/theirs") is None  # never used, not even through a reference


def test_absolute_patient_reference_and_history_version_count_as_the_patient():
    obs = lab("abs", SERUM_M, 1.0, "g/dL")
    obs["subject"] = {"reference": "https://fhir.example.org/r4/Patient/p1/_history/4"}
    assert ids(PatientRecord.build("Patient/p1", [obs]).of_type("Observation")) == ["abs"]


def test_entered_in_error_refuted_cancelled_and_preliminary_are_dropped():
    record = PatientRecord.build(
        PATIENT,
        [
            condition("refuted", verification="refuted", text="Multiple myeloma"),
            condition("eie", verification="entered-in-error", text="Multiple myeloma"),
            condition("ok", text="Multiple myeloma"),
            lab("prelim", SERUM_M, 1.0, "g/dL", status="preliminary"),
            lab("amended", SERUM_M, 1.0, "g/dL", status="amended"),
            lab("corrected", SERUM_M, 1.0, "g/dL", status="corrected"),
            lab("cancelled", SERUM_M, 1.0, "g/dL", status="cancelled"),
            lab("eie-obs", SERUM_M, 1.0, "g/dL", status="entered-in-error"),
            {"resourceType": "MedicationRequest", "id": "mr", "status": "cancelled", "intent": "order",
             "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": "lenalidomide"}},
        ],
    )
    assert ids(record.of_type("Condition")) == ["ok"]
    assert ids(record.of_type("Observation")) == ["amended", "corrected"]
    assert record.of_type("MedicationRequest") == ()
    codes = {i.reference: i.code for i in record.issues}
    assert codes["Condition/refuted"] == "refuted"
    assert codes["Observation/prelim"] == "not-final"
    assert codes["MedicationRequest/mr"] == "cancelled"


def test_malformed_entries_are_skipped_and_reported_without_values():
    bad = lab("bad", SERUM_M, "1.2 g/dL", "g/dL")  # a value a lab interface put in the wrong field
    good = lab("good", SERUM_M, 1.2, "g/dL")
    bundle = searchset(good, bad)
    bundle["entry"].append({"fullUrl": "x", "resource": "not a resource"})
    bundle["entry"].append("garbage")
    record = PatientRecord.build(PATIENT, [bundle, 42])
    assert len(record.of_type("Observation")) == 2  # indexed raw; validated only on use
    assert record.well_formed(good)
    assert not record.well_formed(bad) and not record.well_formed(bad)  # reported once
    malformed = [i for i in record.issues if i.code == "malformed"]
    assert len(malformed) == 4
    bad_issue = next(i for i in malformed if i.reference == "Observation/bad")
    assert "valueQuantity.value" in bad_issue.detail and "1.2 g/dL" not in bad_issue.detail


def test_only_the_elements_facts_read_are_validated():
    # A malformed note or narrative does not cost the result; a malformed value (which labs read) does.
    odd_note = lab("odd-note", SERUM_M, 1.2, "g/dL")
    odd_note["note"] = "see chart"  # Annotation[] sent as a bare string
    odd_note["meta"] = {"lastUpdated": "yesterday"}
    bad_value = lab("bad-value", SERUM_M, 1.2, "g/dL")
    bad_value["valueQuantity"]["value"] = "1.2 g/dL"
    missing_status = lab("no-status", SERUM_M, 1.2, "g/dL")
    record = PatientRecord.build(PATIENT, [searchset(odd_note, bad_value)])
    assert record.well_formed(odd_note)
    assert not record.well_formed(bad_value)
    del missing_status["status"]  # required by R4: a resource without it stays malformed
    assert pytest.raises(MalformedResource, validate, missing_status).value.paths == ("status",)


def test_validation_is_lazy_for_large_records():
    observations = [lab(f"o{i}", SERUM_M, 1.0, "g/dL") for i in range(2000)]
    record = PatientRecord.build(PATIENT, [searchset(*observations)])
    assert len(record.of_type("Observation")) == 2000
    assert record._well_formed == {}  # nothing validated until a fact asks


def test_resolve_relative_absolute_urn_and_contained():
    med = {"resourceType": "Medication", "id": "med1", "code": {"text": "lenalidomide"}}
    order = {
        "resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
        "contained": [{"resourceType": "Medication", "id": "m", "code": {"text": "contained"}}],
        "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "#m"},
    }
    record = PatientRecord.build(PATIENT, [searchset(med, order)])
    assert record.resolve({"reference": "Medication/med1"}) is med
    assert record.resolve("https://other.example.org/fhir/Medication/med1") is med
    assert record.resolve("https://fhir.example.org/api/FHIR/R4/Medication/med1") is med
    assert record.resolve("#m", context=order)["code"]["text"] == "contained"
    assert record.resolve("#m") is None
    assert record.resolve("Medication/none") is None
    assert record.resolve({"display": "no reference"}) is None


def test_duplicate_resources_keep_the_newest_version():
    old = {**lab("o1", SERUM_M, 1.0, "g/dL"), "meta": {"lastUpdated": "2026-11-01T00:00:00Z"}}
    new = {**lab("o1", SERUM_M, 2.0, "g/dL"), "meta": {"lastUpdated": "2026-11-02T00:00:00Z"}}
    record = PatientRecord.build(PATIENT, [new, old])
    assert [o["valueQuantity"]["value"] for o in record.of_type("Observation")] == [2.0]


def test_retrieval_outcomes_default_to_complete():
    failed = RetrievalOutcome(RetrievalState.FAILED, "timeout")
    record = PatientRecord.build(PATIENT, [], {"Observation": failed})
    assert record.retrieval("Observation") is failed
    assert record.retrieval("Condition").usable_in_full


def test_flatten_ignores_operation_outcomes_and_limits_nesting():
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "informational"}]}
    deep = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient()}]}
    for _ in range(6):
        deep = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": deep}]}
    entries, issues = flatten([searchset(outcome), deep])
    assert entries == []
    assert [i.code for i in issues] == ["malformed"]


def test_fhir_dates_keep_their_precision_and_local_day():
    assert parse_date("2026-10-01T23:30:00-05:00").earliest.isoformat() == "2026-10-01"
    span = parse_date("1960")
    assert (span.earliest.isoformat(), span.latest.isoformat()) == ("1960-01-01", "1960-12-31")
    assert parse_date("2024-02").latest.isoformat() == "2024-02-29"
    assert parse_date("2026-02-30") is None and parse_date(None) is None
