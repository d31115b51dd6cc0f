"""Reading draft orders: product, CAR-T cell dose, tocilizumab dose/count, prescriber specialty."""

from __future__ import annotations

import pytest

from fhir_mappings.facts import Coded, Observed, RetrievalOutcome, RetrievalState, Unknown
from fhir_mappings.orders import (
    cell_dose,
    order_keys,
    ordered_product,
    ordering_specialties,
    product_identity,
    tocilizumab_request,
)
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.terminology import value_set

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
UCUM = "http://unitsofmeasure.org"
NUCC = "http://nucc.org/provider-taxonomy"
PATIENT = {"reference": "Patient/p1"}


def order(dose=None, **extra):
    body = {
        "resourceType": "MedicationRequest", "id": "mr1", "status": "draft", "intent": "order", "subject": PATIENT,
        "medicationCodeableConcept": {"coding": [{"system": HCPCS, "code": "Q2055"}, {"system": RXNORM, "code": "2536439", "display": "Abecma 30 ML"}], "text": "Abecma"},
        "requester": {"reference": "Practitioner/dr1"},
    }
    if dose is not None:
        body["dosageInstruction"] = [{"doseAndRate": [{"doseQuantity": dose}]}]
    body.update(extra)
    return body


RECORD = PatientRecord.build("p1", [])


def test_product_from_every_coding_and_name():
    product = ordered_product(order())
    assert product.reference == "MedicationRequest/mr1" and product.status == "draft"
    assert Coded(HCPCS, "Q2055", None) in product.codings and ("Abecma" in product.names)
    assert product.requester == "Practitioner/dr1"


def test_product_from_contained_and_referenced_medication_and_service_request():
    contained = order(contained=[{"resourceType": "Medication", "id": "m", "code": {"text": "anitocabtagene autoleucel (KITE-772)"}}],
                      medicationReference={"reference": "#m"})
    del contained["medicationCodeableConcept"]
    assert "anitocabtagene autoleucel (KITE-772)" in ordered_product(contained).names
    referenced = dict(contained, contained=[], medicationReference={"reference": "https://ehr.example.org/fhir/Medication/abc", "display": "Carvykti"})
    medication = {"resourceType": "Medication", "id": "abc", "code": {"coding": [{"system": RXNORM, "code": "2594786"}]}}
    resolve = lambda ref: medication if ref.endswith("Medication/abc") else None  # noqa: E731
    product = ordered_product(referenced, resolve)
    assert Coded(RXNORM, "2594786", None) in product.codings and "Carvykti" in product.names
    assert product_identity(referenced, resolve) == (product.codings, product.names)
    service = {"resourceType": "ServiceRequest", "id": "s", "status": "draft", "code": {"coding": [{"system": HCPCS, "code": "Q2056"}]}}
    assert ordered_product(service).codings == (Coded(HCPCS, "Q2056", None),)
    with pytest.raises(ValueError):
        ordered_product(["not", "a", "resource"])
    with pytest.raises(ValueError):
        product_identity(["not", "a", "resource"])


@pytest.mark.parametrize(
    "quantity, millions, per_kg",
    [
        ({"value": 450, "unit": "million CAR+ T cells", "system": UCUM, "code": "10*6"}, 450.0, False),
        ({"value": 300, "system": UCUM, "code": "10*6{CAR+T cells}"}, 300.0, False),
        ({"value": 4.5, "system": UCUM, "code": "10*8"}, 450.0, False),
        ({"value": 0.75, "system": UCUM, "code": "10*6/kg"}, 0.75, True),
        ({"value": 5, "unit": "10*6{cells}/kg"}, 5.0, True),
    ],
)
def test_cell_dose_units(quantity, millions, per_kg):
    fact = cell_dose(RECORD, order(quantity))
    assert isinstance(fact, Observed)
    assert fact.value.millions_of_cells == pytest.approx(millions) and fact.value.per_kg is per_kg
    assert fact.evidence[0].reference == "MedicationRequest/mr1"


@pytest.mark.parametrize(
    "quantity, why",
    [
        ({"value": 450}, "no unit"),
        ({"value": 450, "unit": "x10^6 cells"}, "not a UCUM count"),
        ({"value": 450, "system": UCUM, "code": "mL"}, "not a UCUM count"),
        ({"value": -1, "system": UCUM, "code": "10*6"}, "no positive"),
    ],
)
def test_cell_dose_unknown_keeps_raw_value(quantity, why):
    fact = cell_dose(RECORD, order(quantity))
    assert isinstance(fact, Unknown) and why in fact.reason
    assert fact.evidence[0].value == str(quantity["value"])
    assert isinstance(cell_dose(RECORD, order()), Unknown)


def toci(dose, **extra):
    body = order(dose, **extra)
    body["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": "612865", "display": "tocilizumab"}]}
    return body


def test_tocilizumab_dose_and_count():
    fact = tocilizumab_request(RECORD, toci({"value": 800, "system": UCUM, "code": "mg"}))
    assert fact.value.dose_mg_per_administration == 800 and fact.value.number_of_doses is None
    counted = toci({"value": 0.8, "system": UCUM, "code": "g"})
    counted["dosageInstruction"][0]["timing"] = {"repeat": {"count": 4}}
    assert tocilizumab_request(RECORD, counted).value.dose_mg_per_administration == pytest.approx(800)
    assert tocilizumab_request(RECORD, counted).value.number_of_doses == 4
    repeats = toci({"value": 600, "unit": "mg"}, dispenseRequest={"numberOfRepeatsAllowed": 3})
    assert tocilizumab_request(RECORD, repeats).value.number_of_doses == 4


def test_tocilizumab_weight_based_or_unitless_dose_is_unknown():
    per_kg = tocilizumab_request(RECORD, toci({"value": 8, "system": UCUM, "code": "mg/kg"}))
    assert isinstance(per_kg, Unknown) and "body weight" in per_kg.reason and per_kg.evidence[0].unit == "mg/kg"
    assert isinstance(tocilizumab_request(RECORD, toci({"value": 800})), Unknown)


PRACTITIONER = {
    "resourceType": "Practitioner", "id": "dr1",
    "qualification": [{"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0360", "code": "MD"}]}}],
}
ROLE = {
    "resourceType": "PractitionerRole", "id": "role1", "practitioner": {"reference": "Practitioner/dr1"},
    "specialty": [{"coding": [{"system": NUCC, "code": "207RH0003X", "display": "Hematology & Oncology"}]}],
}


def test_specialty_from_role_found_by_practitioner():
    fact = ordering_specialties(PatientRecord.build("p1", [PRACTITIONER, ROLE]), order())
    specialties = value_set("oncology-hematology-specialties")
    assert any(specialties.contains(c.system, c.code) for c in fact.value)
    assert {e.reference for e in fact.evidence} == {"PractitionerRole/role1", "Practitioner/dr1"}


def test_specialty_from_requesting_role_with_snomed_and_text():
    role = dict(ROLE, id="role2", specialty=[{"coding": [{"system": "http://snomed.info/sct", "code": "394803006"}]}, {"text": "Cellular therapy"}])
    fact = ordering_specialties(PatientRecord.build("p1", [role]), order(requester={"reference": "PractitionerRole/role2"}))
    assert Coded("http://snomed.info/sct", "394803006", None) in fact.value
    assert Coded(None, None, "Cellular therapy") in fact.value


def test_specialty_unknown_cases():
    assert isinstance(ordering_specialties(RECORD, order(requester=None)), Unknown)
    missing = ordering_specialties(RECORD, order())
    assert isinstance(missing, Unknown) and not missing.retrieval_failed
    failed = PatientRecord.build("p1", [], {"Practitioner": RetrievalOutcome(RetrievalState.FAILED, "http-5xx")})
    assert ordering_specialties(failed, order()).retrieval_failed
    bare = PatientRecord.build("p1", [{"resourceType": "Practitioner", "id": "dr1"}])
    assert "not documented" in ordering_specialties(bare, order()).reason


EPIC_ORDER_NUMBER = {"use": "usual", "system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268", "value": "88412057"}


def test_an_order_is_the_same_order_by_id_or_by_placer_identifier():
    draft = order(identifier=[EPIC_ORDER_NUMBER, {"value": "1"}])  # an identifier without a system says nothing
    stored = order(id="ehr-88412057", status="active", identifier=[dict(EPIC_ORDER_NUMBER, use="official")])
    other = order(id="mr2", identifier=[{"system": "urn:oid:1.2.3", "value": "1"}])

    assert {"MedicationRequest/mr1", f"identifier:{EPIC_ORDER_NUMBER['system']}|88412057"} <= order_keys(draft)
    assert order_keys(draft) & order_keys(stored)
    assert not order_keys(draft) & order_keys(other)
    assert order_keys({"resourceType": "ServiceRequest", "identifier": "junk"}) == frozenset()


def test_an_order_is_the_same_order_by_content_when_it_has_no_shared_id():
    signed_at = {"authoredOn": "2026-11-24T20:30:00Z"}
    draft = order(**signed_at)
    stored = order(id="ehr-4711", status="active", **signed_at)  # the EHR's copy, its own id, no identifier
    toci = order(id="mr-toci", medicationCodeableConcept={"coding": [{"system": RXNORM, "code": "612865"}]}, **signed_at)

    assert order_keys(draft) & order_keys(stored)
    assert not order_keys(draft) & order_keys(toci)  # signed together by the same prescriber: another product
    assert not order_keys(draft) & order_keys(order(id="mr-later", authoredOn="2026-11-25T09:00:00Z"))
    assert not order_keys(order()) & order_keys(order(id="mr-undated"))  # no authoredOn: no content key
