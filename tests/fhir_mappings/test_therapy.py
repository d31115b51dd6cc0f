"""Therapy exposures, prior and concurrent CAR-T/anti-BCMA therapy from Epic-, Cerner- and HAPI-style R4."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_mappings.facts import Observed, RetrievalOutcome, RetrievalState, Unknown
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.therapy import concurrent_requests, exposures, prior_exposures

AS_OF = date(2026, 11, 24)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
PATIENT = {"reference": "Patient/p1"}
FAILED = RetrievalOutcome(RetrievalState.FAILED, "timeout")


def build(resources, retrieval=None):
    return PatientRecord.build("p1", resources, retrieval)


def by_ref(fact):
    return {e.reference: e for e in fact.value}


# Epic: SCD only, local code first; status completed
EPIC_SCD = {
    "resourceType": "MedicationRequest", "id": "epic-len", "status": "completed", "intent": "order", "subject": PATIENT,
    "medicationCodeableConcept": {
        "coding": [
            {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288", "code": "12345", "display": "LENALIDOMIDE 10 MG PO CAPS"},
            {"system": RXNORM, "code": "602910", "display": "lenalidomide 10 MG Oral Capsule"},
        ],
        "text": "lenalidomide 10 mg capsule",
    },
    "authoredOn": "2024-03-01T09:00:00-05:00",
}
# Cerner: SBD for Darzalex Faspro in second position
CERNER_FASPRO = {
    "resourceType": "MedicationAdministration", "id": "cerner-dara", "status": "completed", "subject": PATIENT,
    "medicationCodeableConcept": {
        "coding": [
            {"system": "https://fhir.cerner.com/ec2458f2/synonym", "code": "99"},
            {"system": RXNORM, "code": "2375141", "display": "Darzalex Faspro 1800 MG / 30000 UNT in 15 ML Injection"},
        ]
    },
    "effectiveDateTime": "2024-03-02T14:00:00Z",
}
# HAPI: medicationReference to a Medication resource
MEDICATION = {"resourceType": "Medication", "id": "kyp", "code": {"coding": [{"system": RXNORM, "code": "1302971", "display": "Kyprolis"}]}}
HAPI_REF = {
    "resourceType": "MedicationStatement", "id": "hapi-k", "status": "active", "subject": PATIENT,
    "medicationReference": {"reference": "Medication/kyp"}, "effectivePeriod": {"start": "2025-05"},
}
CONTAINED = {
    "resourceType": "MedicationStatement", "id": "teclistamab", "status": "stopped", "subject": PATIENT,
    "contained": [{"resourceType": "Medication", "id": "m1", "code": {"text": "Tecvayli (teclistamab-cqyv) SC"}}],
    "medicationReference": {"reference": "#m1"}, "effectivePeriod": {"start": "2025-10-01", "end": "2025-12-01"},
}
TEXT_ONLY_TALQ = {
    "resourceType": "MedicationStatement", "id": "talq", "status": "completed", "subject": PATIENT,
    "medicationCodeableConcept": {"text": "Talvey (talquetamab) step-up dosing"}, "effectiveDateTime": "2026-02-01",
}
HYALURONIDASE_ONLY = {
    "resourceType": "MedicationAdministration", "id": "hyal", "status": "completed", "subject": PATIENT,
    "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "5464", "display": "hyaluronidase"}]},
    "effectiveDateTime": "2024-01-01",
}
DRAFT = dict(EPIC_SCD, id="draft-len", status="draft")
ABECMA_PCS = {
    "resourceType": "Procedure", "id": "ide-cel-infusion", "status": "completed", "subject": PATIENT,
    "code": {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/ICD10", "code": "XW033K7"}]},
    "performedDateTime": "2025-03-01",
}
CAR_T_HISTORY = {
    "resourceType": "Condition", "id": "z92", "subject": PATIENT,
    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]},
    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "Z92.850"}]},
    "recordedDate": "2025-06-01",
}


def test_exposures_identify_drugs_however_coded():
    fact = exposures(build([EPIC_SCD, CERNER_FASPRO, MEDICATION, HAPI_REF, CONTAINED, TEXT_ONLY_TALQ]), AS_OF)
    assert isinstance(fact, Observed)
    found = by_ref(fact)
    assert found["MedicationAdministration/cerner-dara"].ingredient == "daratumumab"
    assert "anti-cd38" in found["MedicationAdministration/cerner-dara"].classes
    assert found["MedicationStatement/hapi-k"].classes >= {"proteasome-inhibitor", "anti-myeloma-agents"}
    assert found["MedicationStatement/hapi-k"].start == date(2025, 5, 1)  # partial date: earliest day
    assert found["MedicationStatement/teclistamab"].classes >= {"anti-bcma"}
    assert found["MedicationStatement/talq"].ingredient == "talquetamab"
    assert "anti-bcma" not in found["MedicationStatement/talq"].classes
    # Epic: SCD in second position after a local code, rolled up to the ingredient and its class
    assert found["MedicationRequest/epic-len"].ingredient == "lenalidomide"
    assert "imid" in found["MedicationRequest/epic-len"].classes
    assert found["MedicationRequest/epic-len"].start == date(2024, 3, 1)


def test_draft_orders_hyaluronidase_and_future_starts_are_not_exposures():
    future = dict(HAPI_REF, id="future", effectivePeriod={"start": "2027-01-01"})
    fact = exposures(build([DRAFT, HYALURONIDASE_ONLY, MEDICATION, future]), AS_OF)
    assert fact.value == ()


def test_incomplete_retrieval_makes_exposures_indeterminate():
    fact = exposures(build([EPIC_SCD], {"MedicationAdministration": FAILED}), AS_OF)
    assert isinstance(fact, Unknown) and fact.retrieval_failed
    assert fact.evidence[0].reference == "MedicationRequest/epic-len"


def test_prior_car_t_from_procedures_and_history_codes():
    record = build([ABECMA_PCS, CAR_T_HISTORY, CONTAINED])
    car_t = prior_exposures(record, ("car-t-products", "car-t-history"), AS_OF)
    refs = by_ref(car_t)
    assert set(refs) == {"Procedure/ide-cel-infusion", "Condition/z92"}
    assert refs["Procedure/ide-cel-infusion"].ingredient == "idecabtagene vicleucel"
    assert "idecabtagene-vicleucel" in refs["Procedure/ide-cel-infusion"].classes
    bcma = prior_exposures(record, ("anti-bcma",), AS_OF)
    assert set(by_ref(bcma)) == {"Procedure/ide-cel-infusion", "MedicationStatement/teclistamab"}
    assert prior_exposures(record, ("ciltacabtagene-autoleucel",), AS_OF).value == ()


def test_prior_exposures_with_partial_retrieval():
    record = build([ABECMA_PCS], {"MedicationStatement": FAILED})
    # "has not received any of these": one received exposure contradicts it, missing data cannot undo that
    for asked in (("anti-bcma",), ("imid", "anti-bcma")):
        decided = prior_exposures(record, asked, AS_OF)
        assert isinstance(decided, Observed) and decided.value
    undecided = prior_exposures(record, ("imid",), AS_OF)
    assert isinstance(undecided, Unknown) and undecided.retrieval_failed


ABECMA_ORDER = {
    "resourceType": "MedicationRequest", "id": "order-1", "status": "draft", "intent": "order", "subject": PATIENT,
    "medicationCodeableConcept": {"coding": [{"system": HCPCS, "code": "Q2055"}, {"system": RXNORM, "code": "2536439"}]},
}
CARVYKTI_DRAFT = {
    "resourceType": "ServiceRequest", "id": "sr-2", "status": "draft", "intent": "order", "subject": PATIENT,
    "code": {"coding": [{"system": HCPCS, "code": "Q2056", "display": "Carvykti"}]},
}
ACTIVE_BREYANZI = {
    "resourceType": "MedicationRequest", "id": "mr-old", "status": "active", "intent": "order", "subject": PATIENT,
    "medicationCodeableConcept": {"text": "Breyanzi (lisocabtagene maraleucel) infusion"}, "authoredOn": "2026-11-01",
}


def test_concurrent_car_t_orders_exclude_the_order_itself():
    record = build([ACTIVE_BREYANZI, dict(ABECMA_ORDER, status="active")])
    fact = concurrent_requests(record, ("car-t-products",), ABECMA_ORDER, (ABECMA_ORDER, CARVYKTI_DRAFT))
    refs = by_ref(fact)
    assert set(refs) == {"ServiceRequest/sr-2", "MedicationRequest/mr-old"}
    assert refs["MedicationRequest/mr-old"].ingredient == "lisocabtagene maraleucel"
    alone = concurrent_requests(build([]), ("car-t-products",), ABECMA_ORDER, (ABECMA_ORDER,))
    assert alone.value == ()


def test_concurrent_requests_unknown_when_requests_not_retrieved_and_none_found():
    record = build([], {"MedicationRequest": FAILED})
    fact = concurrent_requests(record, ("car-t-products",), ABECMA_ORDER, (ABECMA_ORDER,))
    assert isinstance(fact, Unknown) and fact.retrieval_failed
    found = concurrent_requests(record, ("car-t-products",), ABECMA_ORDER, (ABECMA_ORDER, CARVYKTI_DRAFT))
    assert isinstance(found, Observed) and len(found.value) == 1


def test_administration_joins_its_requests_careplan_group():
    plan = {"resourceType": "CarePlan", "id": "drd", "status": "active", "intent": "plan", "subject": PATIENT, "title": "DRd induction"}
    request = dict(EPIC_SCD, id="req", basedOn=[{"reference": "CarePlan/drd"}])
    admin = dict(CERNER_FASPRO, request={"reference": "MedicationRequest/req"})
    found = by_ref(exposures(build([plan, request, admin]), AS_OF))
    assert found["MedicationAdministration/cerner-dara"].group == "CarePlan/drd"
    assert found["MedicationRequest/req"].group == "CarePlan/drd"


def test_an_rxnorm_coding_sent_with_its_oid_rolls_up_to_the_same_ingredient():
    # Some EHRs send RxNorm as urn:oid:2.16.840.1.113883.6.88, code only; the drug must stay one ingredient
    # (lines of therapy compare ingredients), not become "602910" beside "lenalidomide".
    as_oid = {**EPIC_SCD, "id": "epic-len-oid", "medicationCodeableConcept": {"coding": [
        {"system": "urn:oid:2.16.840.1.113883.6.88", "code": "602910"}]}}
    found = by_ref(exposures(build([EPIC_SCD, as_oid]), AS_OF))
    assert found["MedicationRequest/epic-len-oid"].ingredient == found["MedicationRequest/epic-len"].ingredient == "lenalidomide"


# ------------------------------------------------------------------ prior therapy however it is recorded

CILTA_SCD = {"coding": [{"system": RXNORM, "code": "2594780", "display": "ciltacabtagene autoleucel suspension"}]}


def therapy(kind, rid, status, concept, **extra):
    """A therapy resource of ``kind`` naming ``concept`` (a CodeableConcept), dated 2025-03-18."""
    element = "code" if kind in ("Procedure", "Condition", "ServiceRequest") else "medicationCodeableConcept"
    resource = {"resourceType": kind, "id": rid, "subject": PATIENT, element: concept, **extra}
    if status is not None:
        resource["status"] = status
    date_element = {"MedicationRequest": "authoredOn", "ServiceRequest": "authoredOn", "Procedure": "performedDateTime",
                    "Condition": "onsetDateTime", "MedicationDispense": "whenHandedOver"}.get(kind, "effectiveDateTime")
    resource.setdefault(date_element, "2025-03-18")
    if kind in ("MedicationRequest", "ServiceRequest"):
        resource.setdefault("intent", "order")
    return resource


CAR_T = ("car-t-products", "car-t-history")


@pytest.mark.parametrize(("kind", "status", "concept"), [
    ("MedicationStatement", "completed", {"text": "BCMA CAR-T (investigational), NCT04181827"}),
    ("MedicationAdministration", "completed", {"text": "Investigational CAR T-cell product, study drug"}),
    ("MedicationDispense", "completed", CILTA_SCD),
    ("MedicationAdministration", "stopped", CILTA_SCD),  # an infusion stopped part-way was received
    ("Procedure", "completed", {"text": "CAR-T cell infusion (clinical trial)"}),
    ("Procedure", "completed", {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/ICD10", "code": "XW033C3"}]}),
    ("Condition", None, {"text": "Personal history of CAR T cell therapy"}),
    ("Condition", None, {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "Z92.850"}]}),
])
def test_received_car_t_contradicts_no_prior_car_t_however_recorded(kind, status, concept):
    fact = prior_exposures(build([therapy(kind, "x", status, concept)]), CAR_T, AS_OF)

    assert isinstance(fact, Observed) and [e.reference for e in fact.value] == [f"{kind}/x"]
    assert fact.evidence[0].element.startswith("received")


def test_an_investigational_bcma_car_t_written_in_words_is_anti_bcma_and_car_t():
    record = build([therapy("MedicationStatement", "x", "completed", {"text": "Anti-BCMA CAR-T (trial product)"})])

    assert isinstance(prior_exposures(record, ("anti-bcma",), AS_OF), Observed)
    assert prior_exposures(record, ("anti-bcma",), AS_OF).value
    assert prior_exposures(record, CAR_T, AS_OF).value


@pytest.mark.parametrize(("kind", "status", "concept"), [
    ("MedicationRequest", "completed", CILTA_SCD),  # ordered: perhaps given, perhaps cancelled after apheresis
    ("MedicationRequest", "stopped", CILTA_SCD),
    ("ServiceRequest", "completed", {"text": "Carvykti (ciltacabtagene autoleucel) infusion"}),
    ("MedicationStatement", "intended", CILTA_SCD),
    ("MedicationDispense", "in-progress", CILTA_SCD),
    ("Procedure", "preparation", {"text": "CAR-T cell infusion"}),
    ("Condition", None, {"text": "History of CAR-T therapy"}),  # unconfirmed, see below
])
def test_an_order_plan_or_unconfirmed_history_is_unknown_never_met(kind, status, concept):
    extra = {}
    if kind == "Condition":
        extra["verificationStatus"] = {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "unconfirmed"}]}
    fact = prior_exposures(build([therapy(kind, "x", status, concept, **extra)]), CAR_T, AS_OF)

    assert isinstance(fact, Unknown) and not fact.retrieval_failed
    assert [e.reference for e in fact.evidence] == [f"{kind}/x"] and f"{kind}/x" in fact.reason


@pytest.mark.parametrize(("kind", "concept"), [
    ("Procedure", {"text": "Leukapheresis for CAR-T manufacturing"}),
    ("Procedure", {"text": "Leukapheresis for ide-cel manufacturing"}),
    ("Procedure", {"text": "Scar tissue revision"}),
    ("Condition", {"text": "Candidate for CAR T-cell therapy"}),
    ("Condition", {"text": "Referred for BCMA-directed therapy evaluation"}),
    ("Condition", {"text": "No prior anti-BCMA therapy"}),
    ("Condition", {"text": "Abecma order cancelled, product not infused"}),
    ("MedicationAdministration", {"text": "Fludarabine 30 mg/m2 IV, lymphodepleting chemotherapy prior to CAR-T"}),
])
def test_preparing_for_or_denying_car_t_is_not_prior_car_t(kind, concept):
    record = build([therapy(kind, "x", "completed" if kind != "Condition" else None, concept)])

    for asked in (CAR_T, ("anti-bcma",), ("idecabtagene-vicleucel",)):
        assert prior_exposures(record, asked, AS_OF) == Observed((), ())


def test_a_drug_given_for_car_t_toxicity_is_that_drug_but_suggests_prior_car_t():
    toci = therapy("MedicationAdministration", "toci", "completed",
                   {"text": "Tocilizumab 8 mg/kg IV for CAR-T cytokine release syndrome"})
    record = build([toci])

    (given,) = prior_exposures(record, ("tocilizumab",), AS_OF).value
    assert given.ingredient == "tocilizumab" and "car-t-products" not in given.classes
    fact = prior_exposures(record, CAR_T, AS_OF)
    assert isinstance(fact, Unknown) and fact.evidence[0].element == "mentioned in the record's text"


def test_a_note_on_the_myeloma_problem_makes_prior_anti_bcma_unknown():
    myeloma = {
        "resourceType": "Condition", "id": "mm", "subject": PATIENT,
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C90.02"}]},
        "note": [{"text": "Relapsed 2024. Progressed on teclistamab without response; now referred for CAR-T."}],
    }
    record = build([myeloma])

    bcma = prior_exposures(record, ("anti-bcma",), AS_OF)
    assert isinstance(bcma, Unknown) and bcma.evidence[0].reference == "Condition/mm"
    assert prior_exposures(record, CAR_T, AS_OF) == Observed((), ())  # "referred for CAR-T" is not CAR-T


# ------------------------------------------------------------------ the order being signed is not history

SIGNED = dict(ABECMA_ORDER, status="active", authoredOn="2026-11-20",
              identifier=[{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268", "value": "88412057"}])


@pytest.mark.parametrize("copy_in_record", [
    SIGNED,
    dict(SIGNED, id="ehr-88412057"),  # the EHR's copy under its own id, same placer order number
], ids=["same-id", "same-identifier"])
def test_the_order_being_signed_is_neither_prior_therapy_nor_an_exposure(copy_in_record):
    record = PatientRecord.build("p1", [copy_in_record, SIGNED], orders_being_signed=(SIGNED,))

    for asked in (CAR_T, ("anti-bcma",), ("idecabtagene-vicleucel",)):
        assert prior_exposures(record, asked, AS_OF) == Observed((), ())
    assert exposures(record, AS_OF).value == ()
    assert concurrent_requests(record, ("car-t-products",), SIGNED, (SIGNED,)).value == ()


def test_an_administration_under_the_signed_order_number_is_still_an_administration():
    given = therapy("MedicationAdministration", "ma", "completed", ABECMA_ORDER["medicationCodeableConcept"],
                    identifier=SIGNED["identifier"])
    record = PatientRecord.build("p1", [given, SIGNED], orders_being_signed=(SIGNED,))

    fact = prior_exposures(record, ("idecabtagene-vicleucel",), AS_OF)
    assert isinstance(fact, Observed) and [e.reference for e in fact.value] == ["MedicationAdministration/ma"]


# ------------------------------------------------------------------ concurrent orders

CARVYKTI_SR = therapy("ServiceRequest", "sr-cilta", "active", {"coding": [{"system": HCPCS, "code": "Q2056"}]})


@pytest.mark.parametrize("other", [
    CARVYKTI_SR,
    dict(CARVYKTI_SR, status="on-hold"),
    therapy("MedicationRequest", "mr-cilta", "draft", CILTA_SCD),
    therapy("ServiceRequest", "sr-trial", "active", {"text": "BCMA CAR-T infusion, investigational (NCT04181827)"}),
])
def test_a_live_order_for_another_car_t_product_is_concurrent_whatever_its_resource(other):
    fact = concurrent_requests(build([other]), ("car-t-products",), ABECMA_ORDER, (ABECMA_ORDER,))

    assert isinstance(fact, Observed) and [e.reference for e in fact.value] == [f"{other['resourceType']}/{other['id']}"]


@pytest.mark.parametrize("other", [
    dict(CARVYKTI_SR, status="completed"),
    therapy("MedicationRequest", "mr-cilta", "active", CILTA_SCD, intent="proposal"),
    therapy("ServiceRequest", "sr-apheresis", "active", {"text": "Leukapheresis for CAR-T cell manufacturing"}),
    therapy("ServiceRequest", "sr-toci", "active", {"text": "Tocilizumab for CAR-T CRS"}),
])
def test_finished_proposed_or_preparatory_orders_are_not_concurrent(other):
    assert concurrent_requests(build([other]), ("car-t-products",), ABECMA_ORDER, (ABECMA_ORDER,)) == Observed((), ())


@pytest.mark.parametrize("other", [
    therapy("MedicationRequest", "mr-abecma-2", "active", ABECMA_ORDER["medicationCodeableConcept"]),  # duplicate?
    therapy("ServiceRequest", "sr-car-t", "active", {"text": "CAR-T cell infusion"}),  # which product?
])
def test_a_live_order_for_the_same_or_an_unnamed_product_is_unknown(other):
    fact = concurrent_requests(build([other]), ("car-t-products",), ABECMA_ORDER, (ABECMA_ORDER,))

    assert isinstance(fact, Unknown) and not fact.retrieval_failed
    assert [e.reference for e in fact.evidence] == [f"{other['resourceType']}/{other['id']}"]


def test_service_requests_not_retrieved_leave_concurrency_unknown():
    fact = concurrent_requests(build([], {"ServiceRequest": FAILED}), ("car-t-products",), ABECMA_ORDER, (ABECMA_ORDER,))

    assert isinstance(fact, Unknown) and fact.retrieval_failed


@pytest.mark.parametrize(("resource", "expected"), [
    # Epic lists an active order on the medication list as an active MedicationStatement: not history
    (therapy("MedicationStatement", "ms", "active", ABECMA_ORDER["medicationCodeableConcept"],
             basedOn=[{"reference": "MedicationRequest/order-1"}]), Observed((), ())),
    # the pharmacy preparing the product for the order being signed: its own fulfilment
    (therapy("MedicationDispense", "md", "in-progress", ABECMA_ORDER["medicationCodeableConcept"],
             authorizingPrescription=[{"reference": "MedicationRequest/order-1"}]), Observed((), ())),
    # handed over for this order, infusion not documented: at most unknown
    (therapy("MedicationDispense", "md", "completed", ABECMA_ORDER["medicationCodeableConcept"],
             authorizingPrescription=[{"reference": "MedicationRequest/order-1"}]), Unknown),
    # infused under this order: received, whatever order it was given under
    (therapy("MedicationAdministration", "ma", "completed", ABECMA_ORDER["medicationCodeableConcept"],
             request={"reference": "MedicationRequest/order-1"}), Observed),
])
def test_the_fulfilment_of_the_order_being_signed_counts_only_when_it_shows_the_product_given(resource, expected):
    record = PatientRecord.build("p1", [resource, SIGNED], orders_being_signed=(SIGNED,))

    fact = prior_exposures(record, ("idecabtagene-vicleucel",), AS_OF)

    if isinstance(expected, type):
        assert isinstance(fact, expected) and fact.evidence[0].reference.endswith(f"/{resource['id']}")
    else:
        assert fact == expected
        assert exposures(record, AS_OF).value == ()  # nor a line of therapy starting today
