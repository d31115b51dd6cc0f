"""order-dispatch (CRD hook-4, resp-26, hook-33): the dispatched CAR-T orders get the same decision, cards and
coverage-information as at order-sign. Requests are the sandbox's recorded Abecma hook turned into the
order-dispatch call an EHR makes when it sends the signed order to the treatment center."""

from __future__ import annotations

import copy

import pytest
import responses

from cds_service import create_app
from cds_service.discovery import discovery_document
from sandbox.catalog import SANDBOX_PAYER_IDENTIFIER
from tests.cds_service.conftest import HOOK_URL, protocol_settings
from tests.cds_service.test_order_sign_end_to_end import (
    AS_OF,
    DECISION,
    SANDBOX_FHIR,
    abecma_meets,
    coverage_information,
)
from tests.crd_checks import check_coverage_information
from tests.response_checks import check_discovery, check_response

DISPATCH_URL = "/cds-services/car-t-coverage-dispatch"
ORDER = "MedicationRequest/tocilizumab-within-allowance-cart"


@pytest.fixture(scope="module")
def client():
    settings = protocol_settings(allow_loopback_fhir=True, payer_identifiers=(SANDBOX_PAYER_IDENTIFIER,))
    return create_app(settings, as_of=AS_OF).test_client()


def dispatched(sign_hook: dict, *, in_prefetch: bool = True) -> dict:
    """The order-dispatch call for the orders of ``sign_hook``, named by reference, found in the prefetch's
    MedicationRequest search or only on the FHIR server. (The orders keep the status they were signed
    with: an active order must first never count as its own prior therapy, a fhir_mappings change.)"""
    hook = copy.deepcopy(sign_hook)
    orders = [entry.pop("resource") for entry in hook["context"].pop("draftOrders")["entry"]]
    if in_prefetch:
        bundle = hook["prefetch"]["medicationRequests"]
        bundle.setdefault("entry", []).extend({"fullUrl": f"{SANDBOX_FHIR}/{o['resourceType']}/{o['id']}",
                                               "resource": o} for o in orders)
    hook["hook"] = "order-dispatch"
    hook["context"] = {"patientId": hook["context"]["patientId"],
                       "dispatchedOrders": [f"{o['resourceType']}/{o['id']}" for o in orders],
                       "performer": "Organization/authorized-treatment-center"}
    return hook


def active_orders(sign_hook: dict) -> list[dict]:
    """The orders of ``sign_hook`` as the EHR holds them once signed (status kept: see ``dispatched``)."""
    return [entry["resource"] for entry in sign_hook["context"]["draftOrders"]["entry"]]


def answered(client, hook: dict, orders: list[dict]) -> dict:
    """POST the dispatch; the response passes every CDS Hooks and CRD check, the updates being ``orders``
    (the dispatched orders as the EHR holds them) plus the extension."""
    response = client.post(DISPATCH_URL, json=hook)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    drafts = {"resourceType": "Bundle", "entry": [{"resource": order} for order in orders]}
    check_response(body, hook="order-dispatch", draft_orders=drafts, expect_system_actions=True)
    check_coverage_information(body, drafts)
    return body


def test_discovery_offers_order_dispatch_with_the_same_prefetch_and_options():
    document = discovery_document()
    check_discovery(document)
    sign, dispatch = document["services"]
    assert (sign["hook"], dispatch["hook"]) == ("order-sign", "order-dispatch")
    assert dispatch["prefetch"] == sign["prefetch"] and dispatch["extension"] == sign["extension"]


def test_a_dispatched_order_from_the_prefetch_gets_the_order_sign_decision(client):
    signed = client.post(HOOK_URL, json=abecma_meets()).get_json()

    body = answered(client, dispatched(abecma_meets()), active_orders(abecma_meets()))

    verdict = body["cards"][0]["extension"][DECISION]["verdict"]
    assert verdict == signed["cards"][0]["extension"][DECISION]["verdict"] == "meets-policy"
    assert coverage_information(body, ORDER)["covered"] == "covered"


def test_a_dispatched_order_is_read_from_the_fhir_server_when_not_prefetched(client, http_mock):
    hook = dispatched(abecma_meets(), in_prefetch=False)
    (order,) = active_orders(abecma_meets())
    http_mock.add(responses.GET, f"{SANDBOX_FHIR}/{ORDER}", json=order)

    body = answered(client, hook, [order])

    assert coverage_information(body, ORDER)["covered"] == "covered"


def test_a_dispatched_order_that_cannot_be_read_is_a_412_naming_it(client, http_mock):
    hook = dispatched(abecma_meets(), in_prefetch=False)
    http_mock.add(responses.GET, f"{SANDBOX_FHIR}/{ORDER}", status=404)

    response = client.post(DISPATCH_URL, json=hook)

    assert response.status_code == 412
    assert response.get_json()["issue"][0]["expression"] == ["context.dispatchedOrders[0]"]


@pytest.mark.parametrize(("change", "path"), [
    (lambda h: h.update(hook="order-sign"), "hook"),
    (lambda h: h["context"].update(dispatchedOrders=[]), "context.dispatchedOrders"),
    (lambda h: h["context"].update(dispatchedOrders=["Patient/1"]), "context.dispatchedOrders[0]"),
    (lambda h: h["context"].pop("performer"), "context.performer"),
])
def test_a_malformed_order_dispatch_context_is_a_400_naming_the_field(client, change, path):
    hook = dispatched(abecma_meets())
    change(hook)

    response = client.post(DISPATCH_URL, json=hook)

    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == [path]
