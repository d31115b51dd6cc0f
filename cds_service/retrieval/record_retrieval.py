"""Obtain the patient's record for one hook call: prefetch first, then the EHR's FHIR server.

Every declared prefetch key (``fhir_mappings.data_requirements``) ends in one ``RetrievalOutcome`` for
its resource type, so the mapping layer can tell "the record does not show it" (complete retrieval) from
"we could not get it" (failed or partial), which turns the decision ``indeterminate`` instead of
reporting missing documentation.

Keys the EHR did not satisfy are queried in parallel in a bounded thread pool under one deadline: the
hook waits about as long as the slowest query, and never past the deadline. Queries still running then
are abandoned (their outcome is ``failed: timeout``, or ``partial: deadline`` for a paginated prefetch).
When nothing at all can be obtained, ``RecordUnavailable`` is raised; the route answers 412.

The caller must have passed ``fhir_server`` through ``fhir_server_guard.check_fhir_server`` first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from cds_service import metrics
from cds_service.retrieval.fhir_client import (
    Deadline,
    FhirClient,
    FhirRequestError,
    new_session,
)
from cds_service.retrieval.fhir_server_guard import origin_of
from cds_service.retrieval.prefetch import (
    PrefetchItem,
    PrefetchState,
    expected_types,
    interpret_prefetch,
)
from fhir_mappings import (
    COMPLETE,
    MissingContextValue,
    RetrievalOutcome,
    RetrievalState,
    data_requirements,
    is_local,
    relative_reference,
    resource_reference,
)

log = logging.getLogger(__name__)

READ_TYPES = ("Medication", "Practitioner", "PractitionerRole")  # what a draft order's references may make us read
_SEVERITY = {RetrievalState.NOT_NEEDED: 0, RetrievalState.COMPLETE: 1, RetrievalState.PARTIAL: 2, RetrievalState.FAILED: 3}


@dataclass(frozen=True)
class RetrievalLimits:
    """Bounds on FHIR I/O for one hook (settings ``FHIR_DEADLINE_SECONDS``, ``FHIR_MAX_PAGES``,
    ``FHIR_MAX_RESPONSE_BYTES``, ``FHIR_MAX_WORKERS``)."""

    deadline_seconds: float = 3.0
    max_pages: int = 20
    max_response_bytes: int = 20 * 1024 * 1024
    max_workers: int = 16


@dataclass(frozen=True)
class RetrievedRecord:
    """The raw FHIR JSON obtained (prefetch values and query results, de-duplicated by ``Type/id``) and
    the outcome per resource type. ``fetched_any`` is True when at least one request to ``fhirServer``
    answered with usable data; ``queried`` lists the prefetch keys that had to be queried."""

    resources: tuple[dict, ...]
    outcomes: Mapping[str, RetrievalOutcome]
    fetched_any: bool = False
    queried: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedReferences:
    """Resources read for the draft orders' references (Medication, requester, its PractitionerRoles)."""

    resources: tuple[dict, ...]
    outcomes: Mapping[str, RetrievalOutcome]


class RecordUnavailable(Exception):
    """No record data could be obtained at all (route: 412 + OperationOutcome). The message holds no
    URL, token or patient data."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class _Result:
    resources: tuple[dict, ...] = ()
    outcomes: dict[str, RetrievalOutcome] = field(default_factory=dict)
    from_server: bool = False


@dataclass(frozen=True)
class _Job:
    """One unit of FHIR I/O run in the pool; ``on_timeout`` is its result if the deadline passes first."""

    name: str
    run: Callable[[], _Result]
    on_timeout: _Result


def retrieve_record(
    *,
    fhir_server: str | None,
    access_token: str | None,
    prefetch: Mapping[str, object] | None,
    patient_id: str,
    user_id: str | None = None,
    encounter_id: str | None = None,
    draft_orders: Sequence[dict] = (),
    limits: RetrievalLimits = RetrievalLimits(),
    deadline: Deadline | None = None,
    clock: Callable[[], float] = time.monotonic,
    session: requests.Session | None = None,
) -> RetrievedRecord:
    """The patient's record for this hook call.

    ``draft_orders`` are the resources of ``context.draftOrders`` (plus any already resolved for them);
    their references are resolved in the same pool (see ``resolve_order_references``). ``deadline``
    lets the caller share one deadline between calls; otherwise one is started from ``limits``.
    Raises ``RecordUnavailable`` when there is no usable prefetch and either no ``fhir_server`` or every
    query for the record failed."""
    context = {"patientId": patient_id, "userId": user_id, "encounterId": encounter_id}
    items = interpret_prefetch(prefetch, context)
    metrics.prefetch_states(items)
    usable_prefetch = any(i.state in (PrefetchState.PRESENT, PrefetchState.NO_DATA) for i in items.values())
    if not usable_prefetch and not fhir_server:
        raise RecordUnavailable("no-data-source", "No patient record data: no usable prefetch and no fhirServer.")
    deadline = deadline or Deadline(limits.deadline_seconds, clock)

    with _fhir_client(fhir_server, access_token, deadline, limits, session) as client:
        results: list[_Result] = []
        jobs: list[_Job] = []
        for req in data_requirements():
            planned = _plan_key(req, items[req.key], client, context)
            if isinstance(planned, _Job):
                jobs.append(planned)
            else:
                results.append(planned)
        record_jobs = len(jobs)
        known = [r for i in items.values() for r in i.resources] + list(draft_orders)
        user_queried = user_id if items["user"].needs_query and client else None
        failures, reference_jobs = _reference_plan(draft_orders, known, client, user_queried,
                                                   _roles_covered(items["userRoles"], user_id, client))
        job_results = _run(jobs + reference_jobs, deadline, limits.max_workers)

    key_results = job_results[:record_jobs]
    if not usable_prefetch and not any(r.from_server for r in key_results):
        reasons = sorted({o.reason or o.state.value for r in key_results for o in r.outcomes.values()})
        raise RecordUnavailable(
            "all-queries-failed", f"No patient record data: every FHIR query failed ({', '.join(reasons)})."
        )
    record = _assemble(results + failures + job_results, queried=tuple(k for k, i in items.items() if i.needs_query))
    states: dict[str, int] = {}
    for outcome in record.outcomes.values():
        states[outcome.state.value] = states.get(outcome.state.value, 0) + 1
    log.info("record retrieval done", extra={
        "count": len(record.resources), "counts": states, "remaining_ms": round(deadline.remaining() * 1000)})
    return record


def resolve_order_references(
    draft_orders: Sequence[dict],
    *,
    fhir_server: str | None,
    access_token: str | None,
    prefetch: Mapping[str, object] | None = None,
    patient_id: str | None = None,
    limits: RetrievalLimits = RetrievalLimits(),
    deadline: Deadline | None = None,
    clock: Callable[[], float] = time.monotonic,
    session: requests.Session | None = None,
) -> ResolvedReferences:
    """Read what the draft orders point to and the record does not hold: a MedicationRequest's
    non-contained ``medicationReference``, the ordering Practitioner/PractitionerRole and the
    Practitioner's roles (``PractitionerRole?practitioner=``). Looks in the prefetch and the draft
    orders first; reads run in parallel inside the deadline. Use it before applicability when an order
    names its product only through a referenced Medication."""
    items = interpret_prefetch(prefetch, {"patientId": patient_id, "userId": None, "encounterId": None})
    known = [r for i in items.values() for r in i.resources] + list(draft_orders)
    deadline = deadline or Deadline(limits.deadline_seconds, clock)
    with _fhir_client(fhir_server, access_token, deadline, limits, session) as client:
        failures, jobs = _reference_plan(draft_orders, known, client, None)
        results = _run(jobs, deadline, limits.max_workers)
    record = _assemble(failures + results, queried=())
    return ResolvedReferences(record.resources, record.outcomes)


# ------------------------------------------------------------------------------------------------
# Planning: what each prefetch key needs
# ------------------------------------------------------------------------------------------------


def _plan_key(req, item: PrefetchItem, client: FhirClient | None, context) -> _Result | _Job:
    """An immediate result (prefetch used as is, or a failure known without I/O) or a job to run."""
    types = expected_types(req)
    if item.state is PrefetchState.NO_DATA:
        return _Result(outcomes={req.resource_type: COMPLETE})
    if item.state is PrefetchState.PRESENT and not item.next_url:
        return _Result(item.resources, {req.resource_type: COMPLETE})
    if item.state is PrefetchState.PRESENT:  # paginated by the EHR: follow its next link
        if client is None:
            return _Result(item.resources, {req.resource_type: _partial("no-fhir-server")})

        def follow() -> _Result:
            found = client.continue_search(list(item.resources), item.next_url, types)
            fetched = len(found.resources) > len(item.resources)
            return _Result(found.resources, {req.resource_type: _search_outcome(found)}, from_server=fetched)

        return _Job(req.key, follow, _Result(item.resources, {req.resource_type: _partial("deadline")}))
    if not req.applies(context):
        return _Result()
    if client is None:
        return _Result(outcomes={req.resource_type: _failed("no-fhir-server")})
    try:
        path, params = req.query(context)
    except MissingContextValue:
        return _Result(outcomes={req.resource_type: _failed("missing-context")})

    def query() -> _Result:
        if req.is_read:
            return _Result((client.read(path, types),), {req.resource_type: COMPLETE}, from_server=True)
        found = client.search(req.resource_type, params, types)
        return _Result(found.resources, {req.resource_type: _search_outcome(found)}, from_server=True)

    return _Job(req.key, _failing_as(query, req.resource_type), _Result(outcomes={req.resource_type: _failed("timeout")}))


def _roles_covered(user_roles: PrefetchItem, user_id: str | None, client: FhirClient | None) -> str | None:
    """The user (``Practitioner/id``) when the ``userRoles`` key brings all of their roles: the EHR
    prefetched them (even none), or the key's own query runs; None otherwise."""
    if not isinstance(user_id, str) or not user_id.strip().startswith("Practitioner/"):
        return None
    covered = user_roles.state in (PrefetchState.PRESENT, PrefetchState.NO_DATA) or (user_roles.needs_query and client)
    return user_id.strip() if covered else None


def _reference_plan(
    orders: Sequence[dict], known: Sequence[dict], client: FhirClient | None, user_queried: str | None,
    roles_covered: str | None = None,
) -> tuple[list[_Result], list[_Job]]:
    """Reads of the orders' referenced Medications, requesters and requesters' roles that the known
    resources do not already hold (one job per distinct target), plus failures known without I/O.
    ``roles_covered`` is a Practitioner whose roles the ``userRoles`` key already brings."""
    known_refs = {ref for r in known if (ref := resource_reference(r)) is not None}
    role_holders = {
        _relative(r["practitioner"].get("reference"), client)
        for r in known
        if isinstance(r, dict) and r.get("resourceType") == "PractitionerRole" and isinstance(r.get("practitioner"), dict)
    }
    reads: dict[str, tuple[str, ...]] = {}  # target -> elements whose references to read next
    role_searches: set[str] = set()
    failures: list[_Result] = []
    for order in orders:
        if not isinstance(order, dict):
            continue
        medication = order.get("medicationReference") if order.get("resourceType") == "MedicationRequest" else None
        if isinstance(medication, dict) and not is_local(str(medication.get("reference", "#"))):
            target = _relative(medication.get("reference"), client)
            if target is None or not target.startswith("Medication/"):
                failures.append(_Result(outcomes={"Medication": _failed("unresolvable-reference")}))
            elif target not in known_refs:
                reads[target] = ()
        requester = order.get("requester")
        requester = _relative(requester.get("reference"), client) if isinstance(requester, dict) else None
        if requester is None or not requester.startswith("Practitioner"):
            continue
        if requester not in known_refs and requester != user_queried:
            reads[requester] = ("practitioner",) if requester.startswith("PractitionerRole/") else ()
        if requester.startswith("Practitioner/") and requester not in role_holders and requester != roles_covered:
            role_searches.add(requester)
    if client is None:
        types = {t.split("/", 1)[0] for t in reads} | ({"PractitionerRole"} if role_searches else set())
        return failures + [_Result(outcomes={t: _failed("no-fhir-server")}) for t in sorted(types)], []
    jobs = [_read_job(client, target, follow, known_refs) for target, follow in reads.items()]
    jobs += [_roles_job(client, practitioner) for practitioner in sorted(role_searches)]
    return failures, jobs


def _read_job(client: FhirClient, target: str, then_follow: tuple[str, ...], known_refs: set[str]) -> _Job:
    """Read ``target``; then read what its ``then_follow`` elements reference (a role's practitioner)."""
    resource_type = target.split("/", 1)[0]

    def run() -> _Result:
        resource = client.read(target, (resource_type,))
        resources, outcomes = [resource], {resource_type: COMPLETE}
        for element in then_follow:
            nested = resource.get(element)
            nested = _relative(nested.get("reference"), client) if isinstance(nested, dict) else None
            if nested and nested not in known_refs:
                nested_type = nested.split("/", 1)[0]
                try:
                    resources.append(client.read(nested, (nested_type,)))
                    outcomes[nested_type] = COMPLETE
                except FhirRequestError as exc:
                    outcomes[nested_type] = _failed(exc.reason)
        return _Result(tuple(resources), outcomes, from_server=True)

    return _Job(target, _failing_as(run, resource_type), _Result(outcomes={resource_type: _failed("timeout")}))


def _roles_job(client: FhirClient, practitioner: str) -> _Job:
    practitioner_id = practitioner.split("/", 1)[1]

    def run() -> _Result:
        found = client.search("PractitionerRole", {"practitioner": practitioner_id})
        return _Result(found.resources, {"PractitionerRole": _search_outcome(found)}, from_server=True)

    timeout = _Result(outcomes={"PractitionerRole": _failed("timeout")})
    return _Job("PractitionerRole?practitioner", _failing_as(run, "PractitionerRole"), timeout)


def _relative(reference: object, client: FhirClient | None) -> str | None:
    """``Type/id`` of a reference to Medication/Practitioner/PractitionerRole, relative or absolute on
    the fhirServer; None for anything else (another server's URL is never read with our token)."""
    if not isinstance(reference, str):
        return None
    if "://" in reference:
        if client is None or origin_of(reference) != client.origin or not reference.startswith(client.base_url + "/"):
            return None
        reference = reference[len(client.base_url) + 1 :]
    return relative_reference(reference, READ_TYPES)


# ------------------------------------------------------------------------------------------------
# Running and assembling
# ------------------------------------------------------------------------------------------------


def _failing_as(run: Callable[[], _Result], resource_type: str) -> Callable[[], _Result]:
    """A job whose typed FHIR failure becomes a failed outcome for its resource type."""

    def guarded() -> _Result:
        try:
            return run()
        except FhirRequestError as exc:
            return _Result(outcomes={resource_type: _failed(exc.reason)})

    return guarded


def _run(jobs: list[_Job], deadline: Deadline, max_workers: int) -> list[_Result]:
    """Run the jobs in parallel; return their results in order, the ``on_timeout`` result for any job
    not finished by the deadline. Does not wait for abandoned jobs."""
    if not jobs:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(jobs))), thread_name_prefix="fhir-query")
    try:
        futures = [pool.submit(job.run) for job in jobs]
        done, _ = wait(futures, timeout=deadline.remaining())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    results = []
    for job, future in zip(jobs, futures, strict=True):
        if future not in done:
            log.warning("FHIR query abandoned at the deadline",
                        extra={"resourceType": job.name.split("/", 1)[0], "reason": "deadline"})
            results.append(job.on_timeout)
        elif future.exception() is not None:  # a defect, not a FHIR failure: keep the hook answering
            log.error("FHIR query failed unexpectedly",
                      extra={"resourceType": job.name.split("/", 1)[0], "reason": type(future.exception()).__name__})
            results.append(_Result(outcomes={k: _failed("error") for k in job.on_timeout.outcomes}))
        else:
            results.append(future.result())
    return results


def _assemble(results: Iterable[_Result], queried: tuple[str, ...]) -> RetrievedRecord:
    seen: set[str] = set()
    resources: list[dict] = []
    outcomes: dict[str, RetrievalOutcome] = {}
    fetched_any = False
    for result in results:
        fetched_any = fetched_any or result.from_server
        for resource in result.resources:
            ref = resource_reference(resource)
            if ref is None or ref not in seen:
                resources.append(resource)
                seen.update((ref,) if ref else ())
        for resource_type, outcome in result.outcomes.items():
            current = outcomes.get(resource_type)
            if current is None or _SEVERITY[outcome.state] > _SEVERITY[current.state]:
                outcomes[resource_type] = outcome
    return RetrievedRecord(tuple(resources), outcomes, fetched_any, queried)


@contextmanager
def _fhir_client(fhir_server, access_token, deadline: Deadline, limits: RetrievalLimits, session) -> Iterator[FhirClient | None]:
    """A ``FhirClient`` for this hook (None without a server); closes the session if it made one."""
    if not fhir_server:
        yield None
        return
    owned = None if session else new_session(limits.max_workers)
    try:
        yield FhirClient(
            fhir_server,
            access_token,
            deadline,
            max_pages=limits.max_pages,
            max_bytes=limits.max_response_bytes,
            session=session or owned,
        )
    finally:
        if owned is not None:
            owned.close()


def _search_outcome(found) -> RetrievalOutcome:
    return COMPLETE if found.complete else _partial(found.reason or "partial")


def _failed(reason: str) -> RetrievalOutcome:
    return RetrievalOutcome(RetrievalState.FAILED, reason)


def _partial(reason: str) -> RetrievalOutcome:
    return RetrievalOutcome(RetrievalState.PARTIAL, reason)
