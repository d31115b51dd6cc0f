"""code_index.coded_in gives exactly what testing every resource with ValueSet.match gives, for every
value set, on codes as EHRs send them (OIDs for LOINC, ICD-10 with and without the dot, text only,
junk codings)."""

from __future__ import annotations

import pytest
from fhir_samples import ICD10CM, KAPPA, LAMBDA, PATIENT, RATIO, SERUM_M, condition, lab, searchset

from fhir_mappings.code_index import coded_in
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.terminology import all_value_sets, value_set


def _record():
    observations = [lab(f"o{i}", analyte, 1.0, "g/dL") for i, analyte in enumerate((SERUM_M, KAPPA, LAMBDA, RATIO) * 3)]
    oid_loinc = lab("oid", SERUM_M, 1.1, "g/dL", local_first=False)
    oid_loinc["code"]["coding"][0]["system"] = "urn:oid:2.16.840.1.113883.6.1"  # LOINC as its OID
    junk = lab("junk", SERUM_M, 1.0, "g/dL")
    junk["code"] = {"coding": ["33358-3", None, {"system": 7, "code": "33358-3"}], "text": 12}
    no_code = lab("no-code", SERUM_M, 1.0, "g/dL")
    del no_code["code"]
    conditions = [
        condition("mm-dot", [(ICD10CM, "C90.02", "Multiple myeloma, in relapse")]),
        condition("mm-nodot", [(ICD10CM, "C9002", None)]),
        condition("mm-text", text="Multiple myeloma in relapse"),
        condition("htn", [(ICD10CM, "I10", "Essential hypertension")], text="Essential hypertension"),
        condition("cns", [(ICD10CM, "C79.31", "Secondary malignant neoplasm of brain")]),
    ]
    return PatientRecord.build(PATIENT, [searchset(*observations, oid_loinc, junk, no_code, *conditions)])


@pytest.mark.parametrize("resource_type", ["Observation", "Condition"])
def test_same_answer_as_a_full_scan_for_every_value_set(resource_type):
    record = _record()
    for vs_id in all_value_sets():
        vs = value_set(vs_id)
        expected = tuple((r, vs.match(r.get("code"))) for r in record.of_type(resource_type) if vs.match(r.get("code")))
        assert coded_in(record, resource_type, "code", vs_id) == expected, vs_id


def test_finds_codes_by_alias_and_text_in_record_order():
    record = _record()
    serum = [r["id"] for r, _ in coded_in(record, "Observation", "code", "serum-m-protein")]
    assert serum == ["o0", "o4", "o8", "oid"]
    myeloma = [(r["id"], hit.code) for r, hit in coded_in(record, "Condition", "code", "multiple-myeloma")]
    assert myeloma == [("mm-dot", "C90.02"), ("mm-nodot", "C9002"), ("mm-text", None)]
