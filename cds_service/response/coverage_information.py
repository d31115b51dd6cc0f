"""Da Vinci CRD coverage-information system actions: the decision written onto the draft order.

One ``update`` action per in-scope order whose ``resource`` is the draft order exactly as the EHR sent
it, plus one ``ext-coverage-information`` extension (CRD ``resp-29``, ``resp-37``). The codes follow the
table below, by the verdict the card shows (``cards.shown_verdict``):

| verdict | covered | pa-needed | doc-needed | doc-purpose | info-needed | reason |
| --- | --- | --- | --- | --- | --- | --- |
| meets-policy | covered | auth-needed | clinical | withpa | | text |
| documentation-incomplete | conditional | auth-needed | clinical | withpa | OTH | text naming the unknown ids |
| does-not-meet | not-covered | | | | | text naming the not-met ids |
| indeterminate | indeterminate | indeterminate | indeterminate | | | code ``technical`` + text |

Missing record documentation is the DTR path: ``doc-needed`` clinical with ``doc-purpose`` withpa (the
documentation goes with the prior authorization request). ``conditional`` needs ``info-needed`` (q3), and
``info-needed`` OTH needs at least one ``detail`` saying what is needed (the extension's own rule): an
``instructions`` detail names the criteria the record does not show. DTR forms go in ``questionnaire``
(``questionnaires`` argument; q1: only with ``doc-needed``).

CRD resp-30: the qualifiers under which a ``covered``/``conditional`` assertion holds travel in the
extension, all taken from the policy's approval terms (``PolicyDecision.approval``), never from code:

- ``detail`` ``allowed-period`` (cat-limitation): the approval duration, as a Period from the assertion date;
- ``detail`` ``allowed-quantity`` (cat-limitation): the doses approved (the CAR-T product's one dose, or the
  co-signed tocilizumab's dose count), and for tocilizumab the mg limit per dose;
- ``detail`` ``instructions`` (cat-limitation): PDAC utilization management review, when the policy requires it;
- ``billingCode``: the HCPCS codes the policy names for its product (none when the policy lists none);
- ``dependency``: a co-signed tocilizumab assertion depends on the CAR-T order it is allowed with.

Detail codes are from ``http://terminology.hl7.org/CodeSystem/crd-coverage-detail`` (CRD 2.2), categories
from the CRD coverage-information codes; HCPCS Level II system as in the terminology reference.

Every assertion also carries ``coverage`` (the Coverage the decision used), ``date`` (``as_of``) and
``coverage-assertion-id``, one per Coverage per response and shared by all of its repetitions (Inferno
requires exactly one assertion id per coverage). The id is derived from what the assertions are about
(``coverage_assertion_id``), not drawn at random: re-signing an order (an edit of an active order) or a
second call on the same record gives the same decision and the same id, so the id the EHR echoes in DTR,
PAS and the claim stays valid. Every row carries a reason text, so the CRD 2.2.1 invariants q6-q9 hold;
the table itself is checked against q2-q5 and "pa-needed whenever covered is not not-covered" (the
CRD 2.0.1 q2 expression) when this module is imported, so an edit that breaks them cannot load.

DTR link (CRD ``resp-38``, DTR launch): the two rows whose order needs clinical documentation with the
prior authorization (meets-policy: the prefilled form to review and sign; documentation-incomplete: the
criteria the record did not show) also carry the ``questionnaire`` canonical of the CAR-T order's
policy form (``questionnaires``: policy id -> canonical, ``cds_service.dtr.questionnaire``), which
``$questionnaire-package`` prefills from this decision by ``coverage-assertion-id``. A contradicted
criterion (nothing to document) and a technical failure (nothing decided) carry none; neither does a
co-signed tocilizumab order (the allowance is not a form). q1: a questionnaire only with doc-needed.

No action is built for an order without a Coverage (the extension requires one; the card says the
coverage could not be retrieved), none at all when the EHR set ``coverage-info: false``, and none for an
order that already carries our assertion with the same id (CRD resp-35: nothing is new). An assertion this
service made earlier on the same order for the same Coverage is replaced, not repeated.
"""

from __future__ import annotations

import calendar
import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from cds_service.response.cards import CriteriaTree, shown_verdict
from cds_service.response.markdown_text import plain
from cds_service.response.responses import SystemAction
from policies import PolicyDecision, Status, Verdict

COVERAGE_INFORMATION_URL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
CRD_TEMP_CODES = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
DETAIL_CODES = "http://terminology.hl7.org/CodeSystem/crd-coverage-detail"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
UCUM = "http://unitsofmeasure.org"
DESCRIPTION_LIMIT = 200


@dataclass(frozen=True)
class Assertion:
    """The coded part of one coverage assertion (``None`` leaves the sub-extension out)."""

    covered: str
    pa_needed: str | None = None
    doc_needed: str | None = None
    doc_purpose: str | None = None
    info_needed: str | None = None
    reason_code: str | None = None  # from the CRD coverageAssertionReasons value set
    questionnaire: bool = False  # the policy's DTR form is linked


ASSERTIONS = {
    Verdict.MEETS_POLICY: Assertion("covered", "auth-needed", "clinical", doc_purpose="withpa", questionnaire=True),
    Verdict.DOCUMENTATION_INCOMPLETE: Assertion("conditional", "auth-needed", "clinical", doc_purpose="withpa",
                                                info_needed="OTH", questionnaire=True),
    Verdict.DOES_NOT_MEET: Assertion("not-covered"),
    Verdict.INDETERMINATE: Assertion("indeterminate", "indeterminate", "indeterminate", reason_code="technical"),
}


def invariant_violations(assertion: Assertion, has_reason: bool) -> list[str]:
    """CRD 2.2.1 ext-coverage-information invariants that ``assertion`` breaks.
    This service sends no satisfied-pa-id, so q5 reduces to the codes."""
    coded = (assertion.covered, assertion.pa_needed, assertion.doc_needed)
    rules = [
        ("q1: a questionnaire needs doc-needed", assertion.questionnaire and not assertion.doc_needed),
        ("q2: not-covered must not carry pa-needed", assertion.covered == "not-covered" and assertion.pa_needed),
        ("q3: conditional needs info-needed", "conditional" in coded and not assertion.info_needed),
        ("q4: no-auth/satisfied must not carry doc-purpose withpa",
         assertion.pa_needed in ("no-auth", "satisfied") and assertion.doc_purpose == "withpa"),
        ("q5: satisfied needs a satisfied-pa-id, which is never sent", assertion.pa_needed == "satisfied"),
        ("q6: info-needed OTH needs a reason", assertion.info_needed == "OTH" and not has_reason),
        ("q8: doc-purpose needs a reason", assertion.doc_purpose and not has_reason),
        ("q9: indeterminate needs a reason", "indeterminate" in coded and not has_reason),
        ("pa-needed is required unless not-covered", assertion.covered != "not-covered" and not assertion.pa_needed),
    ]
    return [name for name, broken in rules if broken]


for _verdict, _assertion in ASSERTIONS.items():  # every row always carries a reason text
    if invariant_violations(_assertion, has_reason=True):
        raise AssertionError(f"{_verdict.value}: {invariant_violations(_assertion, has_reason=True)}")


def coverage_information_actions(
    decisions: Iterable[PolicyDecision], draft_orders: Iterable[dict], as_of: date, enabled: bool = True,
    scope: str = "", questionnaires: Mapping[str, str] | None = None,
) -> list[SystemAction]:
    """The CRD coverage-information ``update`` actions for ``decisions``. ``draft_orders`` are the
    resources of ``context.draftOrders``; ``enabled`` is the EHR's ``coverage-info`` configuration;
    ``scope`` names whose records these are (the EHR's FHIR server and the patient), so that assertion ids
    derived from equal resource ids in two EHRs stay distinct; ``questionnaires`` the DTR form canonical of
    each policy id (none linked when None).

    CRD resp-35: an order that already carries our assertion with the same ``coverage-assertion-id`` (same
    Coverage, same orders, same decision) gets no action: nothing is new."""
    if not enabled:
        return []
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    decisions = [d for d in decisions if d.coverage is not None]
    by_reference = {f"{r.get('resourceType')}/{r.get('id')}": r for r in draft_orders if isinstance(r, dict)}
    actions = []
    for decision in decisions:
        draft = by_reference.get(decision.order)
        if draft is None:
            raise ValueError(f"decision for {decision.order} has no matching resource in draftOrders")
        coverage = decision.coverage
        assert coverage is not None, "decisions without a Coverage were left out above"
        assertion_id = coverage_assertion_id(decisions, coverage, scope)
        if assertion_id in _our_assertion_ids(draft, coverage):
            continue
        questionnaire = (questionnaires or {}).get(decision.policy_id) if decision.order_kind == "car-t" else None
        actions.append(coverage_information_action(decision, draft, as_of, assertion_id,
                                                   dependencies=_dependencies(decision, decisions),
                                                   questionnaires=(questionnaire,) if questionnaire else ()))
    return actions


def coverage_assertion_id(decisions: Iterable[PolicyDecision], coverage: str, scope: str = "") -> str:
    """The ``coverage-assertion-id`` shared by every assertion for ``coverage`` in one response (Inferno: one
    id per Coverage; CRD resp-32/33), derived from what the assertions are about: the Coverage, and per order
    the policy (id and version), the verdict shown and every criterion's status. The same orders signed
    again on the same record give the same id (re-signing, re-invocation); any change in the decision gives
    a new one. The assertion date is left out: an unchanged decision a day later is the same assertion."""
    about = sorted(
        (d.order, d.policy_id, d.policy_version, shown_verdict(d).value, sorted((c.id, c.status.value) for c in d.criteria))
        for d in decisions if d.coverage == coverage)
    digest = hashlib.sha256(json.dumps([scope, coverage, about], separators=(",", ":")).encode()).hexdigest()
    return digest[:32]


def _our_assertion_ids(order: dict, coverage: str) -> set[str]:
    """The ``coverage-assertion-id`` values of the assertions for ``coverage`` the order already carries."""
    found: set[str] = set()
    for extension in order.get("extension") or ():
        if _earlier_assertion(extension, coverage):
            found |= {part["valueString"] for part in extension.get("extension") or ()
                      if isinstance(part, dict) and part.get("url") == "coverage-assertion-id"
                      and isinstance(part.get("valueString"), str)}
    return found


def _dependencies(decision: PolicyDecision, decisions: Iterable[PolicyDecision]) -> tuple[str, ...]:
    """The CAR-T orders a co-signed tocilizumab assertion depends on: its allowance exists only with them."""
    if decision.order_kind != "tocilizumab":
        return ()
    return tuple(d.order for d in decisions if d.order_kind == "car-t" and d.policy_id == decision.policy_id)


def coverage_information_action(
    decision: PolicyDecision, draft: dict, as_of: date, assertion_id: str, *,
    dependencies: tuple[str, ...] = (), questionnaires: tuple[str, ...] = ()
) -> SystemAction:
    """One ``update`` action: a deep copy of ``draft`` plus the extension (earlier assertions for the
    same Coverage removed, every other element untouched)."""
    if decision.coverage is None:
        raise ValueError(f"decision for {decision.order} names no Coverage to assert on")
    verdict = shown_verdict(decision)
    resource = copy.deepcopy(draft)
    existing = resource.get("extension", [])
    if not isinstance(existing, list):
        raise ValueError(f"draftOrders {decision.order}: extension must be an array")
    kept = [e for e in existing if not _earlier_assertion(e, decision.coverage)]
    extension = coverage_information_extension(decision, verdict, as_of, assertion_id, dependencies=dependencies,
                                               questionnaires=questionnaires)
    resource["extension"] = kept + [extension]
    covered = ASSERTIONS[verdict].covered
    description = f"Coverage information for {decision.product} under {decision.policy_id}: {covered}"
    return SystemAction("update", plain(description, DESCRIPTION_LIMIT), resource=resource)


def coverage_information_extension(
    decision: PolicyDecision, verdict: Verdict, as_of: date, assertion_id: str, *,
    dependencies: tuple[str, ...] = (), questionnaires: tuple[str, ...] = ()
) -> dict:
    """The extension for one decision. ``questionnaires``: DTR canonicals, sent only where the verdict's row
    links the policy's form (q1: only with ``doc-needed``)."""
    assertion = ASSERTIONS[verdict]
    reason: dict = {"text": reason_text(decision, verdict)}
    if assertion.reason_code:
        reason = {"coding": [{"system": CRD_TEMP_CODES, "code": assertion.reason_code}], **reason}
    holds = assertion.covered in ("covered", "conditional")  # qualifiers only where coverage may hold
    parts = [
        ("coverage", "valueReference", {"reference": decision.coverage}),
        ("covered", "valueCode", assertion.covered),
        ("pa-needed", "valueCode", assertion.pa_needed),
        ("doc-needed", "valueCode", assertion.doc_needed),
        ("doc-purpose", "valueCode", assertion.doc_purpose),
        ("info-needed", "valueCode", assertion.info_needed),
        ("reason", "valueCodeableConcept", reason),
        ("date", "valueDate", as_of.isoformat()),
        *(("billingCode", "valueCoding", {"system": HCPCS, "code": code}) for code in _billing_codes(decision, holds)),
        *(("dependency", "valueReference", {"reference": order}) for order in dependencies),
        *(("questionnaire", "valueCanonical", url) for url in questionnaires if assertion.questionnaire),
    ]
    details = qualifier_details(decision, as_of) if holds else []
    if assertion.info_needed == "OTH":
        details.append(_detail("cat-limitation", "instructions", "valueString", _missing_documentation(decision)))
    return {"url": COVERAGE_INFORMATION_URL, "extension": [
        *({"url": url, key: value} for url, key, value in parts if value), *details,
        {"url": "coverage-assertion-id", "valueString": assertion_id}]}


def qualifier_details(decision: PolicyDecision, as_of: date) -> list[dict]:
    """CRD resp-30: the policy's approval terms as ``detail`` sub-extensions (see the module doc)."""
    terms = decision.approval
    period = {"start": as_of.isoformat(), "end": _add_months(as_of, terms.duration_months).isoformat()}
    details = [_detail("cat-limitation", "allowed-period", "valuePeriod", period,
                       f"Approval duration {terms.duration_months} months under {decision.policy_id}, "
                       "counted here from the assertion date")]
    if decision.order_kind == "tocilizumab":
        details.append(_detail("cat-limitation", "allowed-quantity", "valueQuantity",
                               _quantity(terms.tocilizumab_max_doses, "dose", "{dose}"),
                               "Tocilizumab doses allowed with the CAR-T infusion"))
        details.append(_detail("cat-limitation", "allowed-quantity", "valueQuantity",
                               _quantity(terms.tocilizumab_max_mg_per_dose, "mg", "mg"), "Per dose"))
    else:
        details.append(_detail("cat-limitation", "allowed-quantity", "valueQuantity",
                               _quantity(terms.doses, "dose", "{dose}"),
                               "Initial treatment dose only; subsequent doses are not covered"))
    if terms.pdac_review_required:
        details.append(_detail("cat-limitation", "instructions", "valueString",
                               f"Every request under {decision.policy_id} requires Precision Drug Action Committee "
                               "(PDAC) utilization management review"))
    return details


def _detail(category: str, code: str, value_key: str, value, qualification: str | None = None) -> dict:
    parts = [
        {"url": "category", "valueCode": category},
        {"url": "code", "valueCodeableConcept": {"coding": [{"system": DETAIL_CODES, "code": code}]}},
        {"url": "value", value_key: value},
    ]
    if qualification:
        parts.append({"url": "qualification", "valueString": plain(qualification)})
    return {"url": "detail", "extension": parts}


def _quantity(value: float, unit: str, ucum: str) -> dict:
    return {"value": int(value) if float(value).is_integer() else value, "unit": unit, "system": UCUM, "code": ucum}


def _add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the month's last day (Nov 30 + 3 -> Feb 28)."""
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def _billing_codes(decision: PolicyDecision, holds: bool) -> tuple[str, ...]:
    """The HCPCS codes the policy names bill its own product, not the co-signed tocilizumab."""
    return decision.approval.hcpcs if holds and decision.order_kind != "tocilizumab" else ()


def _missing_documentation(decision: PolicyDecision) -> str:
    tree = CriteriaTree(decision.criteria)
    return (f"Documentation the record does not show for {plain(decision.policy_id)}: {_ids(tree, Status.UNKNOWN)}; "
            "submit it with the prior authorization request")


def reason_text(decision: PolicyDecision, verdict: Verdict) -> str:
    """The reason for the EHR, naming the criterion ids behind the verdict."""
    tree = CriteriaTree(decision.criteria)
    policy = plain(decision.policy_id)
    if verdict is Verdict.MEETS_POLICY:
        review = " and PDAC review" if decision.approval.pdac_review_required else ""
        return f"Meets {policy} criteria on the record; prior authorization with clinical documentation{review} required"
    if verdict is Verdict.DOES_NOT_MEET:
        text = f"Does not meet {policy}: criteria not met: {_ids(tree, Status.NOT_MET)}"
        if decision.referral is not None:
            referred = [p.policy_id for p in decision.referral.policies
                        if p.line_of_business == decision.line_of_business] or [
                p.policy_id for p in decision.referral.policies]
            text += f"; refer to {', '.join(plain(r) for r in dict.fromkeys(referred))}" if referred else ""
        return text
    if verdict is Verdict.DOCUMENTATION_INCOMPLETE:
        return f"Documentation incomplete for {policy}: criteria not shown in the record: {_ids(tree, Status.UNKNOWN)}"
    return (f"Part of the patient's record could not be retrieved; {policy} criteria not assessed: "
            f"{_ids(tree, Status.UNKNOWN)}; clinical judgement pending")


def _ids(tree: CriteriaTree, status: Status) -> str:
    return ", ".join(plain(c.id) for c in tree.at_issue(status)) or "see the card"


def _earlier_assertion(extension: object, coverage: str) -> bool:
    if not isinstance(extension, dict) or extension.get("url") != COVERAGE_INFORMATION_URL:
        return False
    for part in extension.get("extension") or ():
        if isinstance(part, dict) and part.get("url") == "coverage":
            reference = (part.get("valueReference") or {}).get("reference") or ""
            return reference == coverage or reference.endswith("/" + coverage)
    return False
