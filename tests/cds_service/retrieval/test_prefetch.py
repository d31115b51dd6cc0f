"""Prefetch interpretation, per key: present / null (no data) / not satisfied / absent."""

from __future__ import annotations

import pytest

from cds_service.retrieval.prefetch import PrefetchState, interpret_prefetch
from fhir_mappings.data_requirements import data_requirements

CONTEXT = {"patientId": "1288992", "userId": "PractitionerRole/123", "encounterId": "89284"}
EHR = "https://ehr.example.org/fhir"
PATIENT = {"resourceType": "Patient", "id": "1288992", "birthDate": "1959-03-02", "gender": "female"}
ROLE = {
    "resourceType": "PractitionerRole",
    "id": "123",
    "practitioner": {"reference": "Practitioner/abc"},
    "specialty": [{"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "207RH0003X"}]}],
}
COVERAGE = {
    "resourceType": "Coverage",
    "id": "cov1",
    "status": "active",
    "beneficiary": {"reference": "Patient/1288992"},
    "payor": [{"reference": "Organization/payer"}],
}


def searchset(resource_type, resources, *, next_url=None, self_url=None):
    """A searchset Bundle as HAPI returns it (self link, fullUrl, search.mode)."""
    links = [{"relation": "self", "url": self_url or f"{EHR}/{resource_type}?patient=1288992"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": links,
        "entry": [{"fullUrl": f"{EHR}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in resources],
    }


def test_every_declared_key_is_interpreted_and_absent_keys_need_a_query():
    items = interpret_prefetch(None, CONTEXT)
    assert list(items) == [req.key for req in data_requirements()]
    assert all(i.state is PrefetchState.ABSENT and i.needs_query for i in items.values())
    assert interpret_prefetch(["not", "a", "dict"], CONTEXT)["patient"].state is PrefetchState.ABSENT


def test_present_resource_and_bundle():
    items = interpret_prefetch(
        {"patient": PATIENT, "user": ROLE, "coverage": searchset("Coverage", [COVERAGE])}, CONTEXT
    )
    assert items["patient"].state is PrefetchState.PRESENT and items["patient"].resources == (PATIENT,)
    assert items["user"].resources == (ROLE,)  # {{context.userId}} may be a PractitionerRole
    assert items["coverage"].resources == (COVERAGE,) and items["coverage"].next_url is None
    assert not any(items[k].needs_query for k in ("patient", "user", "coverage"))


def test_null_means_no_data_and_no_query():
    item = interpret_prefetch({"conditions": None}, CONTEXT)["conditions"]
    assert (item.state, item.resources, item.needs_query) == (PrefetchState.NO_DATA, (), False)


def test_empty_searchset_is_present_with_no_resources():
    item = interpret_prefetch({"procedures": searchset("Procedure", [])}, CONTEXT)["procedures"]
    assert (item.state, item.resources, item.needs_query) == (PrefetchState.PRESENT, (), False)


def test_paginated_prefetch_reports_its_next_link():
    # shape of examples/cdshooks3ballot-order-sign-request-paginated-prefetch.json (CDS Hooks 3 ballot)
    page = searchset(
        "MedicationRequest",
        [{"resourceType": "MedicationRequest", "id": "rx-1", "status": "active", "intent": "order", "subject": {"reference": "Patient/1288992"}}],
        next_url=f"{EHR}/MedicationRequest?patient=1288992&_count=1&_page=2",
    )
    item = interpret_prefetch({"medicationRequests": page}, CONTEXT)["medicationRequests"]
    assert item.state is PrefetchState.PRESENT
    assert item.next_url == f"{EHR}/MedicationRequest?patient=1288992&_count=1&_page=2"
    assert [r["id"] for r in item.resources] == ["rx-1"]


OPERATION_OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "processing", "diagnostics": "prefetch query timed out"}],
}
HTML = "<html><head><title>Apache Tomcat - Error report</title></head><body><h1>HTTP Status 500</h1></body></html>"


@pytest.mark.parametrize(
    "key, value, reason",
    [
        ("conditions", OPERATION_OUTCOME, "operation-outcome"),
        ("patient", OPERATION_OUTCOME, "operation-outcome"),
        ("conditions", HTML, "not-fhir"),
        ("conditions", [], "not-fhir"),
        ("conditions", {"entry": []}, "not-fhir"),
        ("conditions", 42, "not-fhir"),
        ("patient", COVERAGE, "wrong-type"),
        ("user", PATIENT, "wrong-type"),
        ("observations", searchset("Condition", [{"resourceType": "Condition", "id": "c1"}]), "wrong-type"),
        ("observations", {**searchset("Observation", []), "type": "history"}, "wrong-type"),
        ("observations", {**searchset("Observation", []), "entry": "nope"}, "wrong-type"),
        ("patient", {**PATIENT, "id": "someone-else"}, "other-resource"),
        ("user", {**ROLE, "id": "999"}, "other-resource"),
        ("conditions", searchset("Condition", [], self_url=f"{EHR}/Condition?patient=777"), "other-patient"),
        ("conditions", searchset("Condition", [], self_url=f"{EHR}/Condition?subject=Patient/777"), "other-patient"),
        ("conditions", searchset("Condition", [], self_url=f"{EHR}/Encounter?patient=1288992"), "other-query"),
    ],
)
def test_unusable_values_are_not_satisfied_and_need_a_query(key, value, reason):
    item = interpret_prefetch({key: value}, CONTEXT)[key]
    assert (item.state, item.reason, item.needs_query) == (PrefetchState.NOT_SATISFIED, reason, True)
    assert item.resources == ()


def test_self_link_variants_that_still_match():
    for self_url in (
        f"{EHR}/Condition?patient=Patient/1288992",
        f"{EHR}/Condition/_search",
        f"{EHR}?_getpages=abc&_getpagesoffset=0",
    ):
        item = interpret_prefetch({"conditions": searchset("Condition", [], self_url=self_url)}, CONTEXT)["conditions"]
        assert item.state is PrefetchState.PRESENT, self_url


def test_bundle_with_included_and_outcome_entries():
    bundle = searchset("MedicationRequest", [{"resourceType": "MedicationRequest", "id": "rx-1"}])
    bundle["entry"] += [
        {"resource": {"resourceType": "Medication", "id": "med-1"}, "search": {"mode": "include"}},
        {"resource": OPERATION_OUTCOME, "search": {"mode": "outcome"}},
    ]
    item = interpret_prefetch({"medicationRequests": bundle}, CONTEXT)["medicationRequests"]
    assert [r["resourceType"] for r in item.resources] == ["MedicationRequest", "Medication"]


def test_mixed_prefetch_each_key_on_its_own():
    items = interpret_prefetch(
        {"patient": PATIENT, "conditions": None, "observations": OPERATION_OUTCOME, "coverage": searchset("Coverage", [COVERAGE])},
        CONTEXT,
    )
    states = {k: i.state for k, i in items.items()}
    assert states == {
        "patient": PrefetchState.PRESENT,
        "coverage": PrefetchState.PRESENT,
        "user": PrefetchState.ABSENT,
        "conditions": PrefetchState.NO_DATA,
        "observations": PrefetchState.NOT_SATISFIED,
        "medicationStatements": PrefetchState.ABSENT,
        "medicationAdministrations": PrefetchState.ABSENT,
        "medicationRequests": PrefetchState.ABSENT,
        "medicationDispenses": PrefetchState.ABSENT,
        "procedures": PrefetchState.ABSENT,
        "serviceRequests": PrefetchState.ABSENT,
        "userRoles": PrefetchState.ABSENT,
    }
