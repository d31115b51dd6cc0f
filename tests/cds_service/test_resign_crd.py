"""Re-signing and re-invocation (CRD resp-34/35/36): an order signed again -- an edit of an active order, or
the EHR calling once more for an order that already carries our coverage-information -- gets the same
decision and the same ``coverage-assertion-id``, and no update when nothing is new.

Each test replays what an EHR does: it signs the sandbox's Abecma order, applies our system action to the
order (the EHR stores the extension on it), and signs again.
"""

from __future__ import annotations

import copy

import pytest

from cds_service import create_app
from sandbox.catalog import SANDBOX_PAYER_IDENTIFIER
from tests.cds_service.conftest import HOOK_URL, protocol_settings
from tests.cds_service.test_order_sign_end_to_end import (
    AS_OF,
    COVERAGE_INFORMATION_URL,
    DECISION,
    abecma_meets,
    card_for,
    coverage_information,
    signed,
)
from tests.crd_checks import check_coverage_information
from tests.response_checks import check_response

ORDER = "MedicationRequest/tocilizumab-within-allowance-cart"


@pytest.fixture(scope="module")
def client():
    settings = protocol_settings(allow_loopback_fhir=True, payer_identifiers=(SANDBOX_PAYER_IDENTIFIER,))
    return create_app(settings, as_of=AS_OF).test_client()


def applied(hook: dict, body: dict) -> dict:
    """``hook`` with the system actions of ``body`` applied to its draft orders, as the EHR stores them."""
    hook = copy.deepcopy(hook)
    updated = {f"{a['resource']['resourceType']}/{a['resource']['id']}": a["resource"] for a in body["systemActions"]}
    for entry in hook["context"]["draftOrders"]["entry"]:
        resource = entry["resource"]
        entry["resource"] = copy.deepcopy(updated.get(f"{resource['resourceType']}/{resource['id']}", resource))
    return hook


def resigned(client, hook: dict) -> dict:
    """POST a hook whose orders may carry our earlier assertion; the response passes every CDS Hooks and CRD
    check (crd_checks allows replacing our earlier assertion for the same Coverage, nothing else)."""
    response = client.post(HOOK_URL, json=hook)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    check_response(body, hook="order-sign", draft_orders=hook["context"]["draftOrders"])
    check_coverage_information(body, hook["context"]["draftOrders"])
    return body


def test_the_same_order_on_the_same_record_gets_the_same_assertion_id(client):
    first = signed(client, abecma_meets())
    second = signed(client, abecma_meets())

    assert coverage_information(first, ORDER)["coverage-assertion-id"] == \
        coverage_information(second, ORDER)["coverage-assertion-id"]


def test_an_order_already_carrying_our_unchanged_assertion_gets_no_update(client):
    """resp-35: the EHR calls again for the order, which now carries our extension, and nothing has changed.
    (Re-signing it as ``active`` needs the order never to count as its own prior therapy: fhir_mappings.)"""
    first = signed(client, abecma_meets())
    again = applied(abecma_meets(), first)

    body = resigned(client, again)

    assert "systemActions" not in body
    card = card_for(body, ORDER)  # the guidance is still given
    assert card["extension"][DECISION]["verdict"] == card_for(first, ORDER)["extension"][DECISION]["verdict"]


def test_a_changed_record_gives_a_new_assertion_that_replaces_ours(client):
    first = signed(client, abecma_meets())
    again = applied(abecma_meets(), first)
    observations = again["prefetch"]["observations"]
    observations["entry"] = []  # the labs are no longer in the record
    observations["total"] = 0

    body = resigned(client, again)

    info = coverage_information(body, ORDER)
    assert info["covered"] == "conditional"
    assert info["coverage-assertion-id"] != coverage_information(first, ORDER)["coverage-assertion-id"]
    (action,) = body["systemActions"]
    ours = [e for e in action["resource"]["extension"] if e["url"] == COVERAGE_INFORMATION_URL]
    assert len(ours) == 1  # the earlier assertion is replaced, not kept beside the new one


def test_distinct_patients_with_equal_ids_get_distinct_assertion_ids(client):
    """Two EHRs may both have Coverage/1 and MedicationRequest/1: the id is scoped by server and patient."""
    first = signed(client, abecma_meets())
    other = abecma_meets()
    other["fhirServer"] = "http://127.0.0.1:8091/fhir"

    body = signed(client, other)

    assert coverage_information(body, ORDER)["coverage-assertion-id"] != \
        coverage_information(first, ORDER)["coverage-assertion-id"]
