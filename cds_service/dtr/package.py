"""DTR ``$questionnaire-package`` as a pure function: a ``Parameters`` in, a ``Parameters`` out (or an
``OperationError`` that the HTTP layer answers with its 4xx OperationOutcome).

Inputs (DTR 2.2 ``dtr-qpackage-input-parameters``; 2.0.1/2.1 inputs are a superset and also accepted):
``coverage`` (a Coverage resource, required), ``order`` (draft orders), ``questionnaire`` (canonicals,
``|version`` optional), ``context`` (the CRD ``coverage-assertion-id``) and ``changedsince``; at least
one of order, questionnaire, context (invariant dtr-1). Other parameters (2.1 ``referenced``) are ignored.

Processing:
- the Questionnaires returned are the union of those named by canonical, by the context's decisions
  and by the policies covering the orders (``policies.applicability``), each once, in that order;
- a context names a stored decision (``cds_service.dtr.context.DecisionContext``; keeping them is the
  hook's job). Unknown or
  expired: 404 (DTR spec-130). A coverage or order the context was not made for: 400 (spec-129), so a
  package is never prefilled from another member's or another order's decision;
- a canonical we do not publish, or an older version of one, is a warning in ``outcome`` (oper-9);
  nothing at all to return is a 404;
- ``changedsince`` is read and checked, but the package is always returned: we cannot show that
  nothing changed (the form's version changes with the generator, not only with the policy), and an
  unneeded package is harmless where a missing one is not.

Output (oper-10): one ``collection`` Bundle per Questionnaire (profile DTR-QPackageBundle), the
Questionnaire first (dtrb-1), then exactly one draft QuestionnaireResponse (oper-18), prefilled from
the context's decision for that policy when there is exactly one (``cds_service.dtr.prefill``). The
parameter name is ``PackageBundle`` by default (valid under DTR 2.0.1, 2.1 and 2.2, read by the RI and
Inferno), ``packagebundle`` on request. No CQL Library or ValueSet is needed by our forms.

Error texts are written by us and name the parameter at fault, never a value that was sent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cds_service.dtr.context import DecisionContext
from cds_service.dtr.prefill import DraftContext, draft_response
from fhir_mappings import relative_reference
from policies import (
    ExtraCodes,
    Policy,
    PolicyDecision,
    Status,
    Verdict,
    in_scope_orders,
)

PACKAGE_BUNDLE_PROFILE = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/DTR-QPackageBundle"
OUTPUT_NAMES = ("PackageBundle", "packagebundle")
FHIR_DATETIME = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$")
ISSUE_CODES = {400: "invalid", 403: "forbidden", 404: "not-found", 415: "not-supported"}
ORDER_TYPES = frozenset({"MedicationRequest", "ServiceRequest", "DeviceRequest", "NutritionOrder",
                         "VisionPrescription", "CommunicationRequest", "Appointment", "Encounter"})


class OperationError(Exception):
    """A request a DTR operation refuses: HTTP ``status``, a ``text`` a DTR app can show, the parameter."""

    def __init__(self, status: int, text: str, expression: str | None = None):
        super().__init__(text)
        self.status, self.text, self.expression = status, text, expression

    def outcome(self) -> dict:
        """The OperationOutcome: ``details.text`` is what DTR apps show (the RI reads issue[0])."""
        issue = {"severity": "error", "code": ISSUE_CODES.get(self.status, "processing"),
                 "details": {"text": self.text}, "diagnostics": self.text}
        if self.expression:
            issue["expression"] = [self.expression]
        return {"resourceType": "OperationOutcome", "issue": [issue]}


@dataclass(frozen=True)
class PackageRequest:
    coverage: dict
    orders: tuple[dict, ...] = ()
    canonicals: tuple[str, ...] = ()
    context: str | None = None
    changed_since: str | None = None


@dataclass
class _Outcome:
    issues: list[dict] = field(default_factory=list)

    def add(self, severity: str, code: str, text: str) -> None:
        self.issues.append({"severity": severity, "code": code, "details": {"text": text}})


def parse_request(parameters: object) -> PackageRequest:
    """The operation's inputs, or a 400 naming the parameter at fault."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise OperationError(400, "the request body must be a FHIR Parameters resource", "Parameters")
    entries = parameters.get("parameter")
    if not isinstance(entries, list) or not entries:
        raise OperationError(400, "Parameters.parameter must be a non-empty array", "Parameters.parameter")
    found: dict[str, list] = {}
    for i, entry in enumerate(entries):
        path = f"Parameters.parameter[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise OperationError(400, f"{path} must have a name", path)
        reader = _READERS.get(entry["name"])
        if reader is not None:
            found.setdefault(entry["name"], []).append(reader(entry, path))
    coverages = found.get("coverage", [])
    if not coverages:
        raise OperationError(400, "the coverage parameter (a Coverage resource) is required", "coverage")
    for name in ("context", "changedsince"):
        if len(found.get(name, [])) > 1:
            raise OperationError(400, f"at most one {name} parameter is allowed", name)
    single = {name: next(iter(found.get(name, [])), None) for name in ("context", "changedsince")}
    request = PackageRequest(coverages[0], tuple(found.get("order", [])), tuple(found.get("questionnaire", [])),
                             single["context"], single["changedsince"])
    if not (request.orders or request.canonicals or request.context):
        raise OperationError(400, "at least one of order, questionnaire or context is required (dtr-1)", "Parameters")
    return request


def _resource(entry: dict, path: str, types: Iterable[str], what: str) -> dict:
    resource = entry.get("resource")
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str) \
            or resource["resourceType"] not in types:
        raise OperationError(400, f"{path} ({entry['name']}) must carry {what} resource", f"{path}.resource")
    if not isinstance(resource.get("id"), str) or not resource["id"]:
        raise OperationError(400, f"{path} ({entry['name']}) must have an id", f"{path}.resource.id")
    return resource


def _value(entry: dict, path: str, keys: tuple[str, ...], pattern: re.Pattern | None = None) -> str:
    values = [entry[k] for k in keys if k in entry]
    value = values[0] if len(values) == 1 else None
    if not isinstance(value, str) or not value or (pattern is not None and not pattern.match(value)):
        raise OperationError(400, f"{path} ({entry['name']}) must have one {' or '.join(keys)}", path)
    return value


_READERS: dict[str, Callable[[dict, str], object]] = {
    "coverage": lambda e, p: _resource(e, p, ("Coverage",), "a Coverage"),
    "order": lambda e, p: _resource(e, p, ORDER_TYPES, "an order (MedicationRequest, ServiceRequest, ...)"),
    "questionnaire": lambda e, p: _value(e, p, ("valueCanonical", "valueUri")),
    "context": lambda e, p: _value(e, p, ("valueString",)),
    "changedsince": lambda e, p: _value(e, p, ("valueDateTime", "valueInstant"), FHIR_DATETIME),
}


def questionnaire_package(
    parameters: object,
    *,
    policies: Sequence[Policy],
    forms: Mapping[str, dict],
    find_context: Callable[[str], DecisionContext | None],
    now: datetime,
    output_name: str = "PackageBundle",
    extra_codes: ExtraCodes | None = None,
) -> dict:
    """The ``$questionnaire-package`` answer. ``forms``: the Questionnaire of each policy, by policy id
    (``cds_service.dtr.questionnaire.questionnaires``); ``find_context``: the stored decision context
    of a coverage-assertion-id, or None; ``now``: the time (for expiry and ``authored``)."""
    if output_name not in OUTPUT_NAMES:
        raise ValueError(f"output_name must be one of {OUTPUT_NAMES}")
    request = parse_request(parameters)
    context = _context(request, find_context, now)
    outcome = _Outcome()
    by_id = {policy.id: policy for policy in policies}
    chosen = _chosen_policies(request, context, by_id, forms, outcome, extra_codes)
    if not chosen:
        raise OperationError(404, "no Questionnaire of this payer matches the order(s), questionnaire(s) or context",
                             "Parameters")
    draft = _draft_context(request, context)
    output = []
    for policy in chosen:
        decision = _decision(policy, context, draft, outcome)
        response = draft_response(forms[policy.id], draft, now, policy, decision)
        output.append({"name": output_name, "resource": _bundle(forms[policy.id], response, now)})
    if outcome.issues:
        output.append({"name": "outcome", "resource": {"resourceType": "OperationOutcome", "issue": outcome.issues}})
    return {"resourceType": "Parameters", "parameter": output}


def _context(request: PackageRequest, find_context, now: datetime) -> DecisionContext | None:
    if request.context is None:
        return None
    context = find_context(request.context)
    if context is None:
        raise OperationError(404, "no coverage decision is known for this context (coverage-assertion-id)", "context")
    if context.expires <= now:
        raise OperationError(404, "the coverage decision for this context has expired; sign the order again to "
                                  "get a new one", "context")
    if _reference(request.coverage) != context.coverage:
        raise OperationError(400, "the coverage is not the Coverage this context was decided for", "coverage")
    for order in request.orders:
        if _reference(order) not in context.orders:
            raise OperationError(400, "an order is not one of the orders this context was decided for", "order")
    return context


def _chosen_policies(request, context, by_id, forms, outcome: _Outcome, extra_codes) -> list[Policy]:
    """The policies whose Questionnaires are returned: canonicals, then the context, then the orders."""
    chosen: dict[str, Policy] = {}
    by_url = {form["url"]: (policy_id, form) for policy_id, form in forms.items()}
    for canonical in request.canonicals:
        url, _, version = canonical.partition("|")
        policy_id, form = by_url.get(url, (None, None))
        if form is None or (version and version != form["version"]):
            outcome.add("warning", "not-found", f"Questionnaire {canonical} is not published by this payer"
                        + (f"; the current version is {form['version']}" if form else ""))
            continue
        chosen.setdefault(policy_id, by_id[policy_id])
    for decision in context.decisions if context else ():
        if decision.order_kind == "car-t" and decision.policy_id in by_id:
            chosen.setdefault(decision.policy_id, by_id[decision.policy_id])
    for scoped in in_scope_orders(request.orders, tuple(by_id.values()), extra_codes=extra_codes):
        if scoped.kind == "car-t":
            chosen.setdefault(scoped.policy.id, scoped.policy)
    return [policy for policy in chosen.values() if policy.id in forms]


def _draft_context(request: PackageRequest, context: DecisionContext | None) -> DraftContext:
    orders = tuple(_reference(o) for o in request.orders)
    if context is not None:
        return DraftContext(context.patient, context.coverage, orders or context.orders, context.assertion_id)
    beneficiary = (request.coverage.get("beneficiary") or {}).get("reference")
    if not isinstance(beneficiary, str) or relative_reference(beneficiary, ("Patient",)) != beneficiary:
        raise OperationError(400, "without a context, coverage.beneficiary must reference the Patient (Patient/id)",
                             "coverage.beneficiary")
    return DraftContext(beneficiary, _reference(request.coverage), orders)


def _decision(policy: Policy, context: DecisionContext | None, draft: DraftContext,
              outcome: _Outcome) -> PolicyDecision | None:
    """The context's decision to prefill ``policy``'s form from: the one CAR-T decision under it for
    the draft's orders. Several (two orders of one product) prefill nothing: never answer from the
    wrong order's decision."""
    if context is None:
        return None
    candidates = [d for d in context.decisions
                  if d.policy_id == policy.id and d.order_kind == "car-t" and d.order in draft.orders]
    if len(candidates) != 1:
        if candidates:
            outcome.add("information", "informational",
                        f"several orders under {policy.id}: the form for it is not prefilled")
        return None
    decision = candidates[0]
    if decision.policy_version != policy.version:
        outcome.add("information", "informational", f"the decision was made under {policy.id} version "
                    f"{decision.policy_version}, not the current {policy.version}: the form is not prefilled")
        return None
    if decision.verdict is Verdict.DOES_NOT_MEET:
        not_met = ", ".join(c.id for c in decision.criteria if c.status is Status.NOT_MET and not c.children)
        outcome.add("warning", "business-rule", f"the record contradicts {policy.id} criteria ({not_met}); "
                    "documentation cannot change a criterion the record contradicts")
    return decision


def _bundle(form: dict, response: dict, now: datetime) -> dict:
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [PACKAGE_BUNDLE_PROFILE]},
        "type": "collection",
        "timestamp": now.isoformat(timespec="seconds"),
        "entry": [{"fullUrl": form["url"], "resource": form},
                  {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": response}],
    }


def _reference(resource: dict) -> str:
    return f"{resource['resourceType']}/{resource['id']}"
