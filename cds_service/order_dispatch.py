"""The ``order-dispatch`` hook (CRD hook-4, resp-26): a CAR-T order sent to an authorized treatment center
gets the same decision, cards and coverage-information as when it was signed.

order-dispatch names the orders only by reference (``context.dispatchedOrders``, ``Type/id``), with the
``performer`` they are dispatched to. Each order is taken from the prefetch when a prefetched Bundle holds
it (our ``medicationRequests`` template returns the patient's orders), else read from ``fhirServer`` under
the same access rules as every other read (``order_sign.queryable_fhir_server``). The orders then stand in
for order-sign's ``draftOrders`` and the call goes through the order-sign use case unchanged, so the two
hooks cannot decide differently. An order that can be neither found nor read is a 412 naming it (CDS Hooks:
required data unobtainable); a malformed context is a 400 naming the field.

appointment-book is not offered: a CAR-T infusion is decided on the order (product, patient's record,
prescriber), and the appointment adds nothing the decision uses (CRD hook-4: "not reasonably useful").
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from cds_service.discovery import DISPATCH_HOOK, DISPATCH_SERVICE_ID
from cds_service.errors import HookRequestError, RecordUnavailableError
from cds_service.hook_request import OrderSignRequest, json_path, order_sign_request
from cds_service.order_sign import ORDER_TYPES, OrderSignService, queryable_fhir_server
from cds_service.retrieval.fhir_client import Deadline, FhirClient, FhirRequestError

SERVICE_ID, HOOK = DISPATCH_SERVICE_ID, DISPATCH_HOOK
_REFERENCE = re.compile(r"(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})")
_USER = re.compile(r"(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}")


def order_dispatch_request(data: Any, service: OrderSignService) -> OrderSignRequest:
    """An order-dispatch body as the ``OrderSignRequest`` the use case decides (``hook`` stays
    ``order-dispatch``); raises ``HookRequestError`` (400) or ``RecordUnavailableError`` (412)."""
    context = _context(data)
    references = context["dispatchedOrders"]
    orders = [_dispatched_order(reference, index, data, service) for index, reference in enumerate(references)]
    signed_like = {
        **data,
        "hook": "order-sign",
        "context": {
            "userId": _user(orders, context["performer"]),
            "patientId": context["patientId"],
            "draftOrders": {"resourceType": "Bundle", "type": "collection",
                            "entry": [{"resource": order} for order in orders]},
        },
    }
    return dataclasses.replace(order_sign_request(signed_like), hook=HOOK)


def _context(data: Any) -> dict:
    if not isinstance(data, dict):
        raise HookRequestError("request body must be a JSON object")
    if data.get("hook") != HOOK:
        raise HookRequestError(f'must be "{HOOK}" for this service', "hook")
    context = data.get("context")
    if not isinstance(context, dict):
        raise HookRequestError("is required and must be a JSON object", "context")
    for name in ("patientId", "performer"):
        if not isinstance(context.get(name), str) or not context[name].strip():
            raise HookRequestError("is required and must be a string", json_path(("context", name)))
    references = context.get("dispatchedOrders")
    if not isinstance(references, list) or not references:
        raise HookRequestError("must be a non-empty array of order references",
                               json_path(("context", "dispatchedOrders")))
    for index, reference in enumerate(references):
        match = _REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
        if match is None or match["type"] not in ORDER_TYPES:
            raise HookRequestError("must be a reference to an order such as MedicationRequest/123",
                                   json_path(("context", "dispatchedOrders", index)))
    return context


def _dispatched_order(reference: str, index: int, data: dict, service: OrderSignService) -> dict:
    found = _in_prefetch(reference, data.get("prefetch"))
    if found is not None:
        return found
    authorization = data.get("fhirAuthorization")
    server = queryable_fhir_server(data.get("fhirServer"), isinstance(authorization, dict), service.settings)
    path = json_path(("context", "dispatchedOrders", index))
    if server is None:
        raise RecordUnavailableError("the dispatched order is not in the prefetch and no fhirServer may be queried",
                                     path)
    token = authorization.get("access_token") if isinstance(authorization, dict) else None
    client = FhirClient(server, token, Deadline(service.limits.deadline_seconds),
                        max_bytes=service.limits.max_response_bytes, session=service.session)
    try:
        return client.read(reference, (reference.split("/", 1)[0],))
    except FhirRequestError as exc:
        raise RecordUnavailableError(f"the dispatched order could not be read ({exc.reason})", path) from None


def _in_prefetch(reference: str, prefetch: Any) -> dict | None:
    """The resource ``Type/id`` among the prefetched resources and searchset entries, if any."""
    resource_type, _, resource_id = reference.partition("/")
    for value in (prefetch or {}).values() if isinstance(prefetch, dict) else ():
        candidates = [e.get("resource") for e in value.get("entry") or () if isinstance(e, dict)] \
            if isinstance(value, dict) and value.get("resourceType") == "Bundle" else [value]
        for resource in candidates:
            if isinstance(resource, dict) and resource.get("resourceType") == resource_type \
                    and resource.get("id") == resource_id:
                return resource
    return None


def _user(orders: list[dict], performer: str) -> str:
    """The ordering clinician (the first order's requester) stands in for order-sign's ``userId``; the
    performer when no order names a Practitioner or PractitionerRole requester."""
    for order in orders:
        requester = (order.get("requester") or {}).get("reference")
        if isinstance(requester, str) and _USER.fullmatch(requester):
            return requester
    return performer
