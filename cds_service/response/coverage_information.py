"""Da Vinci CRD coverage-information system actions: the decision written onto the draft order.

One ``update`` action per in-scope order whose ``resource`` is the draft order exactly as the EHR sent
it, plus one ``ext-coverage-information`` extension (CRD ``resp-29``, ``resp-37``). The codes follow the
table below, by the verdict the card shows (``cards.shown_verdict``):

| verdict | covered | pa-needed | doc-needed | doc-purpose | info-needed | reason |
| --- | --- | --- | --- | --- | --- | --- |
| meets-policy | covered | auth-needed | clinical | withpa | | text |
| documentation-incomplete | conditional | auth-needed | clinical | | OTH | text naming the unknown ids |
| does-not-meet | not-covered | | | | | text naming the not-met ids |
| indeterminate | indeterminate | indeterminate | indeterminate | | | code ``technical`` + text |

plus ``coverage`` (the Coverage the decision used), ``date`` (``as_of``) and ``coverage-assertion-id``,
one per Coverage per response and shared by all of its repetitions (Inferno requires exactly one
assertion id per coverage). Every row carries a reason text, so the CRD 2.2.1 invariants q6-q9 hold;
the table itself is checked against q2-q5 and "pa-needed whenever covered is not not-covered" (the
CRD 2.0.1 q2 expression) when this module is imported, so an edit that breaks them cannot load.

No action is built for an order without a Coverage (the extension requires one; the card says the
coverage was not found), and none at all when the EHR set ``coverage-info: false``. An assertion this
service made earlier on the same order for the same Coverage is replaced, not repeated.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable

from cds_service.response.cards import CriteriaTree, shown_verdict
from cds_service.response.markdown_text import plain
from cds_service.response.responses import SystemAction
from policies import PolicyDecision, Status, Verdict

COVERAGE_INFORMATION_URL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
CRD_TEMP_CODES = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
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


ASSERTIONS = {
    Verdict.MEETS_POLICY: Assertion("covered", "auth-needed", "clinical", doc_purpose="withpa"),
    Verdict.DOCUMENTATION_INCOMPLETE: Assertion("conditional", "auth-needed", "clinical", info_needed="OTH"),
    Verdict.DOES_NOT_MEET: Assertion("not-covered"),
    Verdict.INDETERMINATE: Assertion("indeterminate", "indeterminate", "indeterminate", reason_code="technical"),
}


def invariant_violations(assertion: Assertion, has_reason: bool) -> list[str]:
    """CRD 2.2.1 ext-coverage-information invariants that ``assertion`` breaks.
    This service sends no questionnaire and no satisfied-pa-id, so q1 and q5 reduce to the codes."""
    coded = (assertion.covered, assertion.pa_needed, assertion.doc_needed)
    rules = [
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
    decisions: Iterable[PolicyDecision], draft_orders: Iterable[dict], as_of: date, enabled: bool = True
) -> list[SystemAction]:
    """The CRD coverage-information ``update`` actions for ``decisions``. ``draft_orders`` are the
    resources of ``context.draftOrders``; ``enabled`` is the EHR's ``coverage-info`` configuration."""
    if not enabled:
        return []
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    by_reference = {f"{r.get('resourceType')}/{r.get('id')}": r for r in draft_orders if isinstance(r, dict)}
    assertion_ids: dict[str, str] = {}
    actions = []
    for decision in decisions:
        if decision.coverage is None:
            continue
        draft = by_reference.get(decision.order)
        if draft is None:
            raise ValueError(f"decision for {decision.order} has no matching resource in draftOrders")
        assertion_id = assertion_ids.setdefault(decision.coverage, uuid.uuid4().hex)
        actions.append(coverage_information_action(decision, draft, as_of, assertion_id))
    return actions


def coverage_information_action(
    decision: PolicyDecision, draft: dict, as_of: date, assertion_id: str
) -> SystemAction:
    """One ``update`` action: a deep copy of ``draft`` plus the extension (earlier assertions for the
    same Coverage removed, every other element untouched)."""
    verdict = shown_verdict(decision)
    resource = copy.deepcopy(draft)
    existing = resource.get("extension", [])
    if not isinstance(existing, list):
        raise ValueError(f"draftOrders {decision.order}: extension must be an array")
    kept = [e for e in existing if not _earlier_assertion(e, decision.coverage)]
    resource["extension"] = kept + [coverage_information_extension(decision, verdict, as_of, assertion_id)]
    covered = ASSERTIONS[verdict].covered
    description = f"Coverage information for {decision.product} under {decision.policy_id}: {covered}"
    return SystemAction("update", plain(description, DESCRIPTION_LIMIT), resource=resource)


def coverage_information_extension(decision: PolicyDecision, verdict: Verdict, as_of: date, assertion_id: str) -> dict:
    assertion = ASSERTIONS[verdict]
    reason: dict = {"text": reason_text(decision, verdict)}
    if assertion.reason_code:
        reason = {"coding": [{"system": CRD_TEMP_CODES, "code": assertion.reason_code}], **reason}
    parts = [
        ("coverage", "valueReference", {"reference": decision.coverage}),
        ("covered", "valueCode", assertion.covered),
        ("pa-needed", "valueCode", assertion.pa_needed),
        ("doc-needed", "valueCode", assertion.doc_needed),
        ("doc-purpose", "valueCode", assertion.doc_purpose),
        ("info-needed", "valueCode", assertion.info_needed),
        ("reason", "valueCodeableConcept", reason),
        ("date", "valueDate", as_of.isoformat()),
        ("coverage-assertion-id", "valueString", assertion_id),
    ]
    return {
        "url": COVERAGE_INFORMATION_URL,
        "extension": [{"url": url, key: value} for url, key, value in parts if value],
    }


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
