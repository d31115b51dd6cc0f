"""Coverage and line of business with the default and a configured table."""

from __future__ import annotations

import json

import pytest
from fhir_samples import PATIENT, searchset

from fhir_mappings.coverage import LineOfBusinessTableError, coverage, load_line_of_business_table
from fhir_mappings.facts import RetrievalOutcome, RetrievalState, Unknown
from fhir_mappings.patient_record import PatientRecord

LOB = "https://cart-cds.example.org/fhir/CodeSystem/line-of-business"
SOPT = "https://nahdo.org/sopt"


def cov(rid, type_codings=(), classes=(), order=None, status="active", beneficiary=PATIENT):
    res = {
        "resourceType": "Coverage", "id": rid, "status": status,
        "type": {"coding": [{"system": s, "code": c} for s, c in type_codings], "text": "plan"},
        "beneficiary": {"reference": f"Patient/{beneficiary}"},
        "payor": [{"reference": "Organization/payer1"}],
        "class": list(classes),
    }
    if order is not None:
        res["order"] = order
    return res


PAYER = {"resourceType": "Organization", "id": "payer1", "name": "Example Health Plan"}


def line(*resources, table=None, **kw):
    return coverage(PatientRecord.build(PATIENT, [searchset(PAYER, *resources)], **kw), table)


def test_sopt_medicaid_child_code_and_payer_name():
    fact = line(cov("c1", [("http://terminology.hl7.org/CodeSystem/v3-ActCode", "PUBLICPOL"), (SOPT, "211")]))
    assert (fact.value.line_of_business, fact.value.payer, fact.value.reference) == ("medicaid", "Example Health Plan", "Coverage/c1")
    assert fact.evidence[0].value == "211"


def test_own_code_system_on_class_value():
    klass = {"type": {"coding": [{"system": LOB, "code": "line-of-business"}]}, "value": "marketplace"}
    plan = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": "GOLD-123"}
    assert line(cov("c2", classes=[plan, klass])).value.line_of_business == "marketplace"


def test_line_of_business_code_as_the_value_of_a_plan_class():
    plan = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]},
            "value": "ichra", "name": "Individual coverage HRA"}
    fact = line(cov("c5", classes=[plan]))
    assert fact.value.line_of_business == "ichra"
    assert fact.evidence[0].element == "Coverage.class.value" and fact.evidence[0].value == "ichra"


def test_primary_coverage_by_order_and_other_patients_coverage_ignored():
    fact = line(cov("sec", [(SOPT, "5")], order=2), cov("pri", [(LOB, "ichra")], order=1),
                cov("other", [(SOPT, "2")], order=0, beneficiary="p2"))
    assert (fact.value.reference, fact.value.line_of_business) == ("Coverage/pri", "ichra")


def test_cannot_tell_or_conflicting_is_none():
    assert line(cov("c3", [("http://terminology.hl7.org/CodeSystem/v3-ActCode", "HIP")])).value.line_of_business is None
    assert line(cov("c4", [(SOPT, "2"), (LOB, "commercial")])).value.line_of_business is None


def test_no_active_coverage_and_failed_retrieval():
    assert isinstance(line(cov("c5", [(SOPT, "5")], status="cancelled")), Unknown)
    failed = line(retrieval={"Coverage": RetrievalOutcome(RetrievalState.FAILED, "timeout")})
    assert failed.retrieval_failed


def test_configured_table(tmp_path):
    path = tmp_path / "lob.json"
    path.write_text(json.dumps({"codes": [{"system": "urn:payer:plans", "code": "MCD-01", "line_of_business": "medicaid"}]}))
    table = load_line_of_business_table(path)
    assert line(cov("c6", [("urn:payer:plans", "MCD-01")]), table=table).value.line_of_business == "medicaid"
    assert line(cov("c7", [(SOPT, "2")]), table=table).value.line_of_business is None  # default replaced


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "cannot read JSON"), ("[]", "expected a JSON object"),
     (json.dumps({"codes": [{"system": "s", "code": "c", "line_of_business": "medicare"}]}), "codes[0].line_of_business"),
     (json.dumps({"prefixes": [{"system": "s"}]}), "prefixes[0] needs"), (json.dumps({}), "no codes")],
)
def test_bad_table_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "lob.json"
    path.write_text(content)
    with pytest.raises(LineOfBusinessTableError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_line_of_business_table(path)
