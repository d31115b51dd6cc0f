"""The order-sign use case: a validated request in, a CDS Hooks response out.

This is the only orchestration code in the service (routes parse and serialise, nothing more):

1. draft orders -> ``policies.applicability``: which policy covers each order (a product a loaded
   policy covers, or tocilizumab co-signed with one); none in scope -> ``{"cards": []}`` and no FHIR I/O;
2. record retrieval: prefetch first, then fallback FHIR queries in parallel inside one deadline;
3. ``PatientRecord`` -> ``ClinicalFacts``;
4. ``policies.engine`` per in-scope order, as of ``as_of`` (the request date, injectable for replay);
5. cards + CRD coverage-information system actions.

It returns one ``OrderSignOutcome``: the response, plus what the response cannot show (how retrieval went
per resource type, how long each stage took), which the route hands to the audit trail as is.

Everything built once per process (policies, tables, the HTTP session) lives in ``OrderSignService``;
everything about one call lives in local variables, so no state leaks between hooks or patients.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Mapping

import requests

from cds_service.errors import FhirServerNotAllowedError, RecordUnavailableError
from cds_service.hook_request import OrderSignRequest
from cds_service.response.cards import CardSettings, decision_cards
from cds_service.response.coverage_information import coverage_information_actions
from cds_service.response.responses import Response
from cds_service.retrieval.fhir_client import Deadline, new_session
from cds_service.retrieval.fhir_server_guard import FhirServerRefused, check_fhir_server
from cds_service.retrieval.record_retrieval import (
    RecordUnavailable,
    RetrievalLimits,
    resolve_order_references,
    retrieve_record,
)
from cds_service.settings import Settings
from fhir_mappings import (
    ClinicalFacts,
    Coded,
    LineOfBusinessTable,
    PatientRecord,
    RetrievalOutcome,
    default_line_of_business_table,
    load_line_of_business_table,
)
from policies import (
    Policy,
    PolicyDecision,
    ScopedOrder,
    evaluate,
    evaluate_tocilizumab,
    in_scope_orders,
    shipped_policies,
)


# The request resources CDS Hooks order-sign carries in draftOrders (other entries, such as a Medication
# an order references, are context for those orders, not orders themselves).
ORDER_TYPES = frozenset(
    {"MedicationRequest", "ServiceRequest", "DeviceRequest", "NutritionOrder", "CommunicationRequest",
     "VisionPrescription"}
)
SERVICE_KEY = "cart_cds.order_sign"  # app.extensions: the OrderSignService built at start-up


@dataclass(frozen=True)
class OrderSignService:
    """What the use case needs that is built once per process: the validated policies, the card and
    line-of-business tables, the retrieval limits and a pooled HTTP session (no credentials in it)."""

    settings: Settings
    policies: tuple[Policy, ...]
    extra_codes: dict[str, tuple[Coded, ...]]
    card_settings: CardSettings
    line_of_business_table: LineOfBusinessTable
    limits: RetrievalLimits
    session: requests.Session

    @classmethod
    def from_settings(cls, settings: Settings) -> "OrderSignService":
        table_path = settings.line_of_business_table
        return cls(
            settings=settings,
            policies=shipped_policies(),
            extra_codes={
                policy: tuple(Coded(system, code) for system, code in codes)
                for policy, codes in settings.extra_product_codes.items()
            },
            card_settings=CardSettings(payer_name=settings.payer_name, policy_links=dict(settings.policy_links)),
            line_of_business_table=(
                load_line_of_business_table(table_path) if table_path else default_line_of_business_table()
            ),
            limits=RetrievalLimits(
                deadline_seconds=settings.fhir_deadline_seconds,
                max_pages=settings.fhir_max_pages,
                max_response_bytes=settings.fhir_max_response_bytes,
                max_workers=settings.fhir_max_workers,
            ),
            # one pool per worker process, shared by its threads: each concurrent hook may hold a full
            # retrieval wave of connections to the same EHR
            session=new_session(settings.fhir_max_workers * settings.threads),
        )


@dataclass(frozen=True)
class OrderSignOutcome:
    """Everything one call produced: the ``response`` for the EHR (its cards carry the decisions, as
    shown), the retrieval outcome per resource type and the stage timings in milliseconds. Both mappings
    are empty when no order was in scope (nothing was retrieved or evaluated)."""

    response: Response
    retrieval: Mapping[str, RetrievalOutcome] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)


def handle_order_sign(
    request: OrderSignRequest, *, service: OrderSignService, as_of: date | None = None
) -> OrderSignOutcome:
    """Answer one order-sign call. ``as_of`` is the decision date (the request's UTC date when None)."""
    started = time.perf_counter()
    as_of = as_of or datetime.now(timezone.utc).date()
    deadline = Deadline(service.limits.deadline_seconds)  # one budget for every FHIR read of this call
    fhir_access = functools.cache(functools.partial(_fhir_access, request, service, deadline))
    bundle_resources = request.context.draft_order_resources()
    draft_orders = tuple(r for r in bundle_resources if r.get("resourceType") in ORDER_TYPES)

    referenced = _referenced_products(draft_orders, bundle_resources, request, fhir_access)
    known = (*bundle_resources, *referenced)
    scoped = in_scope_orders(draft_orders, service.policies, _resolver(known), service.extra_codes)
    if not scoped:
        return OrderSignOutcome(Response())

    try:
        retrieved = retrieve_record(
            prefetch=request.prefetch,
            patient_id=request.context.patient_id,
            user_id=request.context.user_id,
            encounter_id=request.context.encounter_id,
            draft_orders=known,
            **fhir_access(),
        )
    except RecordUnavailable as exc:
        raise RecordUnavailableError(str(exc), "prefetch") from None
    retrieved_at = time.perf_counter()
    record = PatientRecord.build(request.context.patient_id, (*retrieved.resources, *known), retrieved.outcomes)
    facts = ClinicalFacts(record, service.line_of_business_table)
    decisions = [_decide(s, facts, draft_orders, as_of) for s in scoped]
    evaluated_at = time.perf_counter()

    configuration = request.configuration  # every declared option, defaults filled in
    cards = decision_cards(decisions, service.card_settings, configuration["max-cards"]) if configuration["guideline"] else []
    actions = coverage_information_actions(decisions, draft_orders, as_of, enabled=configuration["coverage-info"])
    return OrderSignOutcome(
        Response(cards=tuple(cards), system_actions=tuple(actions)),
        retrieval=retrieved.outcomes,
        timings={"retrieval_ms": (retrieved_at - started) * 1000, "evaluation_ms": (evaluated_at - retrieved_at) * 1000},
    )


def _decide(scoped: ScopedOrder, facts: ClinicalFacts, draft_orders: tuple[dict, ...], as_of: date) -> PolicyDecision:
    evaluate_order = evaluate if scoped.kind == "car-t" else evaluate_tocilizumab
    return evaluate_order(scoped.policy, facts, scoped.order, as_of, draft_orders)


def _fhir_access(request: OrderSignRequest, service: OrderSignService, deadline: Deadline) -> dict:
    """How this call may reach the EHR's FHIR server: the guarded base URL (or None), the token, the
    limits and the shared deadline. Computed at most once per call, and only once the call needs the
    server, so a request with nothing in scope never triggers the guard's DNS lookup."""
    return dict(
        fhir_server=_checked_fhir_server(request, service.settings),
        access_token=request.fhir_authorization.access_token if request.fhir_authorization else None,
        limits=service.limits,
        deadline=deadline,
        session=service.session,
    )


def _checked_fhir_server(request: OrderSignRequest, settings: Settings) -> str | None:
    if request.fhir_server is None:
        return None
    try:
        server = check_fhir_server(
            request.fhir_server,
            allowed_hosts=settings.fhir_allowed_hosts,
            allow_loopback=settings.allow_loopback_fhir,
        )
    except FhirServerRefused as exc:
        raise FhirServerNotAllowedError(str(exc), exc.field) from None
    return server.base_url


def _referenced_products(draft_orders, bundle_resources, request, fhir_access) -> tuple[dict, ...]:
    """Medications that draft orders name only by a reference outside the request: read them first,
    since applicability needs the product. Orders with an inline or contained product cost no I/O."""
    in_bundle = {f"{r.get('resourceType')}/{r.get('id')}" for r in bundle_resources}
    pending = [
        order for order in draft_orders
        if (reference := _external_medication(order)) is not None and reference not in in_bundle
    ]
    if not pending:
        return ()
    resolved = resolve_order_references(
        pending, prefetch=request.prefetch, patient_id=request.context.patient_id, **fhir_access()
    )
    return tuple(r for r in resolved.resources if r.get("resourceType") == "Medication")


def _external_medication(order: dict) -> str | None:
    medication = order.get("medicationReference") if isinstance(order, dict) else None
    reference = medication.get("reference") if isinstance(medication, dict) else None
    return reference if isinstance(reference, str) and not reference.startswith("#") else None


def _resolver(resources):
    """Find a referenced resource among those the request carried or we read, by ``Type/id`` (an
    absolute reference matches on its ``Type/id`` tail)."""
    known = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources}

    def resolve(reference: str) -> dict | None:
        return known.get(reference) or next(
            (r for key, r in known.items() if reference.endswith("/" + key)), None
        )

    return resolve
