"""The order-sign use case: a validated request in, a CDS Hooks response out.

This is the only orchestration code in the service (routes parse and serialise, nothing more):

1. draft orders -> ``policies.applicability``: which policy covers each order (a product a loaded
   policy in force on ``as_of`` covers, or tocilizumab co-signed with one); none in scope -> ``{"cards": []}`` and no FHIR I/O;
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

import dataclasses
import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import requests

from cds_service.dtr.questionnaire import form_canonicals
from cds_service.errors import FhirServerNotAllowedError, RecordUnavailableError
from cds_service.hook_request import OrderSignRequest
from cds_service.primary_coverage import (
    AssessedCoverage,
    CoverageUnavailable,
    ReadOrganization,
    primary_coverage,
)
from cds_service.response.cards import (
    CardSettings,
    approval_limits_card,
    decision_cards,
    policy_document_card,
    unreadable_product_card,
)
from cds_service.response.coverage_information import coverage_information_actions
from cds_service.response.responses import Response
from cds_service.retrieval.fhir_client import Deadline, FhirClient, new_session
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
    resolver,
    resource_reference,
)
from policies import (
    Policy,
    PolicyDecision,
    ScopedOrder,
    Verdict,
    configured_policies,
    evaluate,
    evaluate_tocilizumab,
    in_force,
    in_scope_orders,
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
    def from_settings(cls, settings: Settings) -> OrderSignService:
        table_path = settings.line_of_business_table
        return cls(
            settings=settings,
            policies=configured_policies(settings.policy_dir, settings.value_set_dir),
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
    decisions: tuple[PolicyDecision, ...] = ()  # as decided, for the DTR context store


def handle_order_sign(
    request: OrderSignRequest, *, service: OrderSignService, as_of: date | None = None
) -> OrderSignOutcome:
    """Answer one order-sign call. ``as_of`` is the decision date (the request's UTC date when None)."""
    started = time.perf_counter()
    as_of = as_of or datetime.now(UTC).date()
    deadline = Deadline(service.limits.deadline_seconds)  # one budget for every FHIR read of this call
    fhir_access = functools.cache(functools.partial(_fhir_access, request, service, deadline))
    bundle_resources = request.context.draft_order_resources()
    draft_orders = tuple(r for r in bundle_resources if r.get("resourceType") in ORDER_TYPES)

    referenced = _referenced_products(draft_orders, bundle_resources, request, fhir_access)
    known = (*bundle_resources, *referenced)
    resolve = resolver(known)
    in_force_today = in_force(service.policies, as_of)  # the version of each policy in force on the order's date
    scoped = in_scope_orders(draft_orders, in_force_today, resolve, service.extra_codes)
    # resp-43: an order whose external Medication could not be read is not silently out of scope
    in_scope = {id(s.order) for s in scoped}
    unreadable = [o for o in draft_orders if id(o) not in in_scope
                  and (reference := _external_medication(o)) is not None and resolve(reference) is None]
    unreadable_cards = [unreadable_product_card(o, service.card_settings) for o in unreadable]
    if not scoped:
        return OrderSignOutcome(
            Response(cards=tuple(_cards([], unreadable_cards, service.card_settings, request.configuration))))

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
    sources = (*retrieved.resources, *known)
    record = PatientRecord.build(request.context.patient_id, sources, retrieved.outcomes,
                                 orders_being_signed=draft_orders)
    coverage = primary_coverage(record, service.settings.payer_identifiers, _organization_reader(fhir_access))
    if isinstance(coverage, AssessedCoverage) and len(record.of_type("Coverage")) > 1:
        # the facts read the member's Coverage (line of business): only the one assessed may be seen
        sources = tuple(r for r in sources if r.get("resourceType") != "Coverage" or
                        f"Coverage/{r.get('id')}" == coverage.reference)
        record = PatientRecord.build(request.context.patient_id, sources, retrieved.outcomes,
                                     orders_being_signed=draft_orders)
    facts = ClinicalFacts(record, service.line_of_business_table)
    decisions = [_decide(s, facts, draft_orders, as_of) for s in scoped]
    if isinstance(coverage, CoverageUnavailable):  # resp-43: technical, whatever the criteria show
        decisions = [dataclasses.replace(d, verdict=Verdict.INDETERMINATE, coverage=None) for d in decisions]
    evaluated_at = time.perf_counter()

    configuration = request.configuration  # every declared option, defaults filled in
    card_settings = service.card_settings
    if isinstance(coverage, AssessedCoverage) and coverage.payer_name:  # resp-4: the name on the member's card
        card_settings = dataclasses.replace(card_settings, payer_name=coverage.payer_name)
    cards = _cards(decisions, unreadable_cards, card_settings, configuration)
    actions = coverage_information_actions(decisions, draft_orders, as_of, enabled=bool(configuration["coverage-info"]),
                                           scope=f"{request.fhir_server or ''}|{request.context.patient_id}",
                                           questionnaires=form_canonicals(service.policies, service.settings.public_base_url))
    return OrderSignOutcome(
        Response(cards=tuple(cards), system_actions=tuple(actions)),
        retrieval=retrieved.outcomes,
        timings={"retrieval_ms": (retrieved_at - started) * 1000, "evaluation_ms": (evaluated_at - retrieved_at) * 1000},
        decisions=tuple(decisions),
    )


def _cards(decisions, unreadable_cards, card_settings: CardSettings, configuration) -> list:
    """The cards the EHR's CRD configuration asks for (dev-5: each card type under its own option), the
    decision cards first, at most ``max-cards``."""
    cards = []
    if configuration["guideline"]:
        cards += [*decision_cards(decisions, card_settings), *unreadable_cards]
    if configuration["appropriate-use"]:
        cards += [c for d in decisions if (c := policy_document_card(d, card_settings))]
    if configuration["limits"]:
        cards += [c for d in decisions if (c := approval_limits_card(d, card_settings))]
    return cards[:configuration["max-cards"]]


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
    return queryable_fhir_server(request.fhir_server, request.fhir_authorization is not None, settings)


def queryable_fhir_server(fhir_server: str | None, authorized: bool, settings: Settings) -> str | None:
    """The fhirServer this call may query, or None. The server-side request forgery guard judges every
    ``fhirServer`` sent (a refused one is a 400). CDS Hooks lets a service query it only with the
    ``fhirAuthorization`` the client grants; without one, only in development or on a server the deployment
    lists as an open test server (``CART_CDS_FHIR_OPEN_HOSTS``). Otherwise the prefetch alone decides, and
    what it lacks is indeterminate (or 412 when it holds nothing)."""
    if fhir_server is None:
        return None
    try:
        server = check_fhir_server(
            fhir_server,
            allowed_hosts=settings.fhir_allowed_hosts,
            allow_loopback=settings.allow_loopback_fhir,
        )
    except FhirServerRefused as exc:
        raise FhirServerNotAllowedError(str(exc), exc.field) from None
    if not authorized and not settings.development and not _open_host(server.base_url, settings.fhir_open_hosts):
        return None
    return server.base_url


def _open_host(url: str, open_hosts: tuple[str, ...]) -> bool:
    parts = urlsplit(url)
    host = parts.hostname
    return bool(host and (host.lower() in open_hosts or parts.netloc.lower() in open_hosts))


def _organization_reader(fhir_access) -> ReadOrganization:
    """Reads a payer ``Organization/{id}`` from this call's fhirServer (None when there is none)."""
    def read(reference: str) -> dict | None:
        access = fhir_access()
        if access["fhir_server"] is None:
            return None
        client = FhirClient(access["fhir_server"], access["access_token"], access["deadline"],
                            max_bytes=access["limits"].max_response_bytes, session=access["session"])
        return client.read(reference, ("Organization",))

    return read


def _referenced_products(draft_orders, bundle_resources, request, fhir_access) -> tuple[dict, ...]:
    """Medications that draft orders name only by a reference outside the request: read them first,
    since applicability needs the product. Orders with an inline or contained product cost no I/O."""
    in_bundle = {resource_reference(r) for r in bundle_resources}
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
