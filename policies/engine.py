"""Evaluate a policy against a patient's facts: a verdict that explains itself criterion by criterion.

``evaluate`` is a pure function of (policy, facts, order, as_of, draft_orders): no clock, no I/O, no
globals beyond the read-only check registry. It walks the required criteria (I.A, II.A.1 and the
section III exclusions), calls each named check, combines groups with Kleene logic and applies the
decision contract's verdict rules:

- ``does-not-meet`` when a required criterion is not met;
- ``indeterminate`` when the outcome is unknown and an unknown stems from a retrieval failure;
- ``documentation-incomplete`` when the outcome is unknown only for lack of documentation;
- ``meets-policy`` when every required criterion is met.

``redecide`` applies the same rules to given results of each criterion's own check instead of running
the checks (DTR re-evaluation with a clinician's attested answers, over a stored decision), and
``own_result`` recovers such a result from a stored decision where its combined status proves it.

A section III criterion is met when the request is clear of that exclusion. When the criterion the
policy names for it (III.A) is not met -- the request is not for multiple myeloma -- the decision carries
the I.B referral for the member's line of business, or for every line when it cannot be told.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from fhir_mappings.facts import FactSource, Observed
from policies.checks import LeafResult, OrderContext, get_check
from policies.decision import CriterionResult, PolicyDecision, Referral, Status, Verdict
from policies.logic import all_of, combine
from policies.model import Criterion, Policy, Referrals


@dataclass
class _Run:
    """Results of one evaluation, in pre-order, plus each node's own check result. ``given`` replaces
    running the checks: each node's own result is taken from it (absent: unknown)."""

    facts: FactSource | None
    as_of: date | None
    context: OrderContext | None
    given: Mapping[str, LeafResult] | None = None
    results: dict[str, CriterionResult | None] = field(default_factory=dict)  # None only while its children run
    own: dict[str, LeafResult] = field(default_factory=dict)

    def leaf(self, node: Criterion) -> LeafResult:
        if self.given is not None:
            return self.given.get(node.id, LeafResult(Status.UNKNOWN, "not assessed"))
        assert node.check is not None and self.facts is not None and self.as_of is not None \
            and self.context is not None, "a run without given results checks a record for an order on a day"
        spec = get_check(node.check)
        return spec.function(self.facts, node.params, self.as_of, self.context)

    def node(self, node: Criterion) -> CriterionResult:
        self.results[node.id] = None  # placeholder keeps pre-order: parent before its children
        own = self.leaf(node) if node.check else None
        children = tuple(self.node(child) for child in node.children)
        if own is not None:
            self.own[node.id] = own
        statuses = [] if own is None else [own.status]
        if children:
            statuses.append(combine(node.logic, (c.status for c in children), node.n))
        status = all_of(statuses)
        failed = status is Status.UNKNOWN and (
            (own is not None and own.status is Status.UNKNOWN and own.retrieval_failed)
            or any(c.status is Status.UNKNOWN and c.retrieval_failed for c in children)
        )
        result = CriterionResult(
            id=node.id,
            text=node.text,
            status=status,
            reason=_reason(node, status, own, children),
            evidence=own.evidence if own is not None else (),
            retrieval_failed=failed,
            documentation=node.documentation,
            children=tuple(c.id for c in children),
        )
        self.results[node.id] = result
        return result

    def result(self, node: Criterion) -> CriterionResult:
        """``node``'s result, once ``node`` (and so each of its children) has run."""
        result = self.results[node.id]
        assert result is not None, "read after the node has run"
        return result

    def documentation(self, node: Criterion) -> list[str]:
        """What to submit for the unknown parts of ``node`` (also under a not-met group: the card lists
        both): an ``any`` group asks for its own documentation (one alternative suffices), an ``all``
        group for each unknown part. Unknowns that stem from a retrieval failure are not missing
        documentation and are left out."""
        result = self.result(node)
        if result.status is Status.NOT_MET:  # still ask for what its unknown parts need
            return [d for child in node.children for d in self.documentation(child)]
        if result.status is Status.MET or not self._documentation_gap(node):
            return []
        if node.logic in ("any", "n_of") and node.documentation:
            return [f"{node.id}: {node.documentation}"]
        out = []
        own = self.own.get(node.id)
        if (not node.children or (own is not None and own.status is Status.UNKNOWN and not own.retrieval_failed)) \
                and node.documentation:
            out.append(f"{node.id}: {node.documentation}")
        for child in node.children:
            out.extend(self.documentation(child))
        return out

    def _documentation_gap(self, node: Criterion) -> bool:
        """Some unknown under ``node`` is missing documentation rather than a retrieval failure."""
        result = self.result(node)
        if result.status is not Status.UNKNOWN:
            return False
        own = self.own.get(node.id)
        if own is not None and own.status is Status.UNKNOWN and not own.retrieval_failed:
            return True
        if not node.children:
            return not result.retrieval_failed
        return any(self._documentation_gap(child) for child in node.children)


def _reason(node: Criterion, status: Status, own: LeafResult | None, children: tuple[CriterionResult, ...]) -> str:
    if not children:
        assert own is not None, "a criterion without children has its own check"
        return own.reason
    by_status = {s: [c.id for c in children if c.status is s] for s in Status}
    if status is Status.MET:
        summary = f"met by {', '.join(by_status[Status.MET])}" if node.logic == "any" else "all parts met"
    elif status is Status.NOT_MET:
        summary = f"not met: {', '.join(by_status[Status.NOT_MET])}" if by_status[Status.NOT_MET] else "not met"
    else:
        summary = f"not shown: {', '.join(by_status[Status.UNKNOWN])}" if by_status[Status.UNKNOWN] else "not shown"
    return f"{own.reason}; {summary}" if own is not None else summary[0].upper() + summary[1:]


def _verdict(status: Status, retrieval_failed: bool) -> Verdict:
    if status is Status.MET:
        return Verdict.MEETS_POLICY
    if status is Status.NOT_MET:
        return Verdict.DOES_NOT_MEET
    return Verdict.INDETERMINATE if retrieval_failed else Verdict.DOCUMENTATION_INCOMPLETE


def _dedupe(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _coverage(facts: FactSource) -> tuple[str | None, str | None]:
    fact = facts.coverage()
    if isinstance(fact, Observed):
        return fact.value.reference, fact.value.line_of_business
    return None, None


def referral(referrals: Referrals, policy: Policy, line_of_business: str | None, reason: str) -> Referral:
    """The referral policies for the member's line of business; all of the policy's lines when the
    member's line is unknown or not one the policy lists."""
    lobs = (line_of_business,) if line_of_business in policy.lines_of_business else policy.lines_of_business
    return Referral(reason, tuple(p for rule in referrals.rules for p in rule.policies(lobs)))


def _decide(policy: Policy, run: _Run, roots: tuple[Criterion, ...], order_kind: str, product: str,
            order: str, coverage: str | None, lob: str | None) -> PolicyDecision:
    top = tuple(run.node(root) for root in roots)
    status = all_of(r.status for r in top)
    failed = status is Status.UNKNOWN and any(r.status is Status.UNKNOWN and r.retrieval_failed for r in top)
    trigger = run.results.get(policy.referral_when_not_met)
    refer = None
    if order_kind == "car-t" and trigger is not None and trigger.status is Status.NOT_MET:
        refer = referral(policy.other_diagnoses, policy, lob, trigger.reason)
    return PolicyDecision(
        order=order,
        order_kind=order_kind,
        product=product,
        policy_id=policy.id,
        policy_version=policy.version,
        policy_title=policy.title,
        verdict=_verdict(status, failed),
        criteria=tuple(r for r in run.results.values() if r is not None),  # every node has run
        missing_documentation=_dedupe([d for root in roots for d in run.documentation(root)]),
        approval=policy.approval,
        referral=refer,
        coverage=coverage,
        line_of_business=lob,
    )


def evaluate(
    policy: Policy, facts: FactSource, order: dict, as_of: date, draft_orders: tuple[dict, ...] = ()
) -> PolicyDecision:
    """Decide one CAR-T order against its policy (I.A, II.A.1, section III) on ``as_of``."""
    run = _Run(facts, as_of, OrderContext(order, tuple(draft_orders), policy.product))
    return _decide(policy, run, policy.required, "car-t", policy.product.display,
                   facts.ordered_product(order).reference, *_coverage(facts))


def evaluate_tocilizumab(
    policy: Policy, facts: FactSource, order: dict, as_of: date, draft_orders: tuple[dict, ...] = ()
) -> PolicyDecision:
    """Decide a tocilizumab order co-signed with a CAR-T order of ``policy`` against the approval's
    tocilizumab allowance (criterion I.A.approval.tocilizumab: dose per administration and doses)."""
    run = _Run(facts, as_of, OrderContext(order, tuple(draft_orders), policy.product))
    return _decide(policy, run, (policy.tocilizumab,), "tocilizumab", f"tocilizumab (with {policy.product.display})",
                   facts.ordered_product(order).reference, *_coverage(facts))


def redecide(policy: Policy, decision: PolicyDecision, own: Mapping[str, LeafResult]) -> PolicyDecision:
    """Decide ``decision``'s order again from given results of each criterion's own check instead of
    running the checks (no record, no clock): the same combination, verdict, documentation and
    referral rules. Used to re-evaluate with a clinician's attested answers; a criterion missing from
    ``own`` is unknown."""
    roots = policy.required if decision.order_kind == "car-t" else (policy.tocilizumab,)
    run = _Run(None, None, None, given=own)
    return _decide(policy, run, roots, decision.order_kind, decision.product, decision.order,
                   decision.coverage, decision.line_of_business)


def own_result(node: Criterion, results: Mapping[str, CriterionResult]) -> LeafResult | None:
    """The result of ``node``'s own check recovered from a stored decision's ``results``, or ``None``
    where the stored status cannot tell it. A leaf's result is its own. A group stores only the
    combination of its own check and its parts, which proves its own status when it is met (all of it
    is), not met while the parts are not (the own check failed), or unknown while the parts are met;
    otherwise it cannot be told. An unknown keeps the group's retrieval flag, which may come from an
    unknown part: in doubt a retrieval failure, never "documentation missing"."""
    result = results[node.id]
    if not node.children:
        return LeafResult(result.status, result.reason, result.evidence, result.retrieval_failed)
    parts = [results[c.id].status for c in node.children if c.id in results]
    if node.check is None or len(parts) != len(node.children):
        return None
    combined = combine(node.logic, parts, node.n)
    proven = (result.status is Status.MET
              or (result.status is Status.NOT_MET and combined is not Status.NOT_MET)
              or (result.status is Status.UNKNOWN and combined is Status.MET))
    if not proven:
        return None
    reason = result.reason.rsplit("; ", 1)[0]  # _reason appended exactly one "; <summary of the parts>"
    return LeafResult(result.status, reason, result.evidence, result.retrieval_failed)
