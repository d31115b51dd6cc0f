"""Which policy covers a draft order: codes in any coding, names for products without codes, the
co-signed tocilizumab order, and everything else out of scope."""

from __future__ import annotations

import pytest

from fhir_mappings.facts import Coded, OrderedProduct
from policies.applicability import applicable_policy, in_scope_orders, is_tocilizumab
from policies.loader import shipped_policies

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
POLICIES = shipped_policies()
LOCAL = "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288"  # an Epic-style local medication code system


def product(*codings, names=(), status="draft"):
    return OrderedProduct("MedicationRequest/x", "MedicationRequest", tuple(Coded(*c) for c in codings), names, status)


def policy_id(p):
    found = applicable_policy(p, POLICIES)
    return found.id if found else None


@pytest.mark.parametrize("ordered, expected", [
    (product((RXNORM, "2536449")), "CP.PHAR.481"),  # Abecma SCD, Epic style
    (product((LOCAL, "12345"), (RXNORM, "2536445")), "CP.PHAR.481"),  # SBD in second position
    (product((HCPCS, "Q2055")), "CP.PHAR.481"),
    (product(names=("ANITO-CEL 115 million CAR+ T cells IV",)), "CP.PHAR.769"),
    (product(names=("KITE 772 infusion",)), "CP.PHAR.769"),
    (product(names=("anitocabtagene autoleucel",)), "CP.PHAR.769"),
    (product((RXNORM, "2594780"), names=("Carvykti",)), None),  # another CAR-T: no loaded policy
    (product((RXNORM, "612865")), None),  # tocilizumab alone
    (product(names=("kite-7721",)), None),  # a name must match as a whole word
    (product((RXNORM, "2536449"), status="entered-in-error"), None),
    (product((RXNORM, "2536448")), None),  # codes are exact: no near misses
])
def test_applicable_policy(ordered, expected):
    assert policy_id(ordered) == expected


def test_configured_codes_for_a_product_without_one():
    ordered = product(("http://example.org/formulary", "KITE772-01"))
    assert applicable_policy(ordered, POLICIES) is None
    extra = {"CP.PHAR.769": (Coded("http://example.org/formulary", "KITE772-01"),)}
    assert applicable_policy(ordered, POLICIES, extra_codes=extra).id == "CP.PHAR.769"


def test_code_match_wins_over_names_and_ambiguous_names_decide_nothing():
    both = product((RXNORM, "2536449"), names=("Abecma (switched from anito-cel)",))
    assert policy_id(both) == "CP.PHAR.481"
    assert policy_id(product(names=("ide-cel or anito-cel",))) is None


def test_tocilizumab_recognised_by_code_or_name():
    assert is_tocilizumab(product((RXNORM, "612865")))
    assert is_tocilizumab(product(names=("Actemra 400 mg/20 mL",)))
    assert not is_tocilizumab(product((RXNORM, "2536449")))


def medication_request(id_, concept):
    return {"resourceType": "MedicationRequest", "id": id_, "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": concept}


ABECMA = medication_request("car-t", {"coding": [{"system": RXNORM, "code": "2536449", "display": "Abecma 100 mL"}]})
TOCILIZUMAB = medication_request("toc", {"coding": [{"system": RXNORM, "code": "612865"}], "text": "tocilizumab"})
ASPIRIN = medication_request("asa", {"coding": [{"system": RXNORM, "code": "1191"}], "text": "aspirin"})
KITE_SERVICE_REQUEST = {"resourceType": "ServiceRequest", "id": "sr1", "status": "draft", "intent": "order",
                        "subject": {"reference": "Patient/p1"}, "code": {"text": "Anito-cel CAR-T infusion"}}


def test_in_scope_orders_from_fhir_draft_orders():
    scoped = in_scope_orders([ASPIRIN, TOCILIZUMAB, ABECMA], POLICIES)
    assert [(s.product.reference, s.kind, s.policy.id) for s in scoped] == [
        ("MedicationRequest/car-t", "car-t", "CP.PHAR.481"),
        ("MedicationRequest/toc", "tocilizumab", "CP.PHAR.481"),
    ]


def test_tocilizumab_without_car_t_is_out_of_scope():
    assert in_scope_orders([TOCILIZUMAB, ASPIRIN], POLICIES) == ()


def test_service_request_and_contained_medication():
    scoped = in_scope_orders([KITE_SERVICE_REQUEST], POLICIES)
    assert [(s.kind, s.policy.id) for s in scoped] == [("car-t", "CP.PHAR.769")]
    contained = {"resourceType": "MedicationRequest", "id": "c1", "status": "draft", "intent": "order",
                 "contained": [{"resourceType": "Medication", "id": "m",
                                "code": {"coding": [{"system": HCPCS, "code": "Q2055"}]}}],
                 "medicationReference": {"reference": "#m"}}
    assert [s.policy.id for s in in_scope_orders([contained], POLICIES)] == ["CP.PHAR.481"]
