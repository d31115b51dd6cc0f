"""Render policy decisions as CDS Hooks cards a clinician reads at a glance.

One card per in-scope order. The ``summary`` names the product and the verdict; the ``detail``
(GitHub-Flavored Markdown, no HTML) puts first what the clinician must act on:

- does-not-meet: each criterion not met, in the policy's words, with the reason and the evidence
  (resource, value, unit, date), then the referral policy for the member's line of business when the
  request falls outside the policy's indication;
- documentation-incomplete: a checklist, one line per criterion the record does not show;
- indeterminate: which criteria could not be assessed because part of the record could not be
  retrieved, and that a clinical judgement is pending (never called missing documentation);
- meets-policy: the approval terms, that prior authorization with documentation (and PDAC review,
  when the policy requires it) still applies, and the evidence behind each criterion.

Every card carries the machine-readable decision (``cart-cds.decision``) and the order it concerns
(``davinci-crd.associated-resource``). All wording comes from the decision (policy text, product,
reasons, evidence); every piece of it is escaped with ``markdown_text`` because any of it may hold
text from the EHR.

Safety net: a card says "meets" only when every required (top-level) criterion is met and each met
group is backed by a met child. A decision that claims meets-policy without that support is shown
with the verdict its criteria support (``shown_verdict``), so a faulty decision can never surface as
an approval.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from cds_service.response.markdown_text import escape, plain
from cds_service.response.responses import CARD_TYPE_SYSTEM, Card, Coding, Link, Source
from fhir_mappings import Evidence
from policies import CriterionResult, PolicyDecision, Status, Verdict

log = logging.getLogger(__name__)

# CRD keeps coverage information for the system action (resp-25); the card explains a payer policy's
# criteria, a "guideline" card, which the EHR can switch off with the matching configuration option.
TOPIC = Coding("guideline", CARD_TYPE_SYSTEM, "Guideline")
DECISION_EXTENSION = "cart-cds.decision"
ASSOCIATED_RESOURCE_EXTENSION = "davinci-crd.associated-resource"
SUMMARY_LIMIT = 139  # CDS Hooks: "< 140 characters"; Inferno rejects 140

# CRD resp-1/resp-2: the indicator is the clinician's view. A coverage denial is a reimbursement risk, not a
# clinical emergency, so at most ``warning``; ``critical`` is kept for serious clinical harm, which a coverage
# policy never signals. Routine coverage information (the order meets the policy) is ``info``.
INDICATOR = {
    Verdict.MEETS_POLICY: "info",
    Verdict.DOCUMENTATION_INCOMPLETE: "warning",
    Verdict.INDETERMINATE: "warning",
    Verdict.DOES_NOT_MEET: "warning",
}
# Which cards ``max-cards`` keeps first: what blocks the order, then what cannot be judged, then what to submit.
_IMPORTANCE = {Verdict.DOES_NOT_MEET: 0, Verdict.INDETERMINATE: 1, Verdict.DOCUMENTATION_INCOMPLETE: 2,
               Verdict.MEETS_POLICY: 3}
_SEVERITY = {Status.MET: 0, Status.UNKNOWN: 1, Status.NOT_MET: 2}

LINE_OF_BUSINESS_LABEL = {
    "commercial": "Commercial",
    "marketplace": "Health Insurance Marketplace",
    "ichra": "ICHRA",
    "medicaid": "Medicaid",
}
REFERRAL_KIND_LABEL = {
    "no-coverage-criteria": "no coverage criteria policy",
    "non-formulary": "non-formulary policy",
    "off-label": "off-label use policy",
}


# --------------------------------------------------------------------------------------------------
# Reading a decision's criteria as a tree
# --------------------------------------------------------------------------------------------------


class CriteriaTree:
    """The decision's flat ``criteria`` as the tree their ``children`` ids describe. Roots are the
    required criteria (no parent): the section I.A group, continued therapy, the exclusions, or the
    tocilizumab allowance."""

    def __init__(self, criteria: Iterable[CriterionResult]):
        criteria = tuple(criteria)
        self._by_id = {c.id: c for c in criteria}
        child_ids = {child for c in criteria for child in c.children}
        self.roots = tuple(c for c in criteria if c.id not in child_ids)

    def children(self, criterion: CriterionResult) -> tuple[CriterionResult, ...]:
        return tuple(self._by_id[i] for i in criterion.children if i in self._by_id)

    def descendants(self, criterion: CriterionResult, status: Status) -> tuple[CriterionResult, ...]:
        """Descendants reached through children with ``status`` (pre-order): the chain that explains
        why ``criterion`` has that status."""
        out: list[CriterionResult] = []
        for child in self.children(criterion):
            if child.status is status:
                out.append(child)
                out.extend(self.descendants(child, status))
        return tuple(out)

    def at_issue(self, status: Status) -> tuple[CriterionResult, ...]:
        """The criteria to name for ``status``, one level below each root group (I.A -> I.A.4), or the
        root itself when it has no such child. Children are taken only from roots at least as bad
        (met < unknown < not-met): a not-met child of a met any-group explains nothing."""
        out: list[CriterionResult] = []
        for root in self.roots:
            if _SEVERITY[root.status] < _SEVERITY[status]:
                continue
            same = tuple(c for c in self.children(root) if c.status is status)
            out.extend(same or ((root,) if root.status is status else ()))
        return tuple(out)

    def supports_met(self, criterion: CriterionResult) -> bool:
        """A met leaf, or a met group with at least one child that itself supports met (all, any and
        n_of groups with children cannot be met otherwise)."""
        if criterion.status is not Status.MET:
            return False
        children = self.children(criterion)
        return not children or any(self.supports_met(c) for c in children)

    def retrieval_failed(self, criterion: CriterionResult) -> bool:
        return criterion.retrieval_failed or any(
            c.retrieval_failed for c in self.descendants(criterion, Status.UNKNOWN)
        )


def shown_verdict(decision: PolicyDecision) -> Verdict:
    """The verdict to show: the decision's own, except that meets-policy needs every required criterion
    met with support (see ``CriteriaTree.supports_met``); otherwise the verdict the criteria support."""
    if decision.verdict is not Verdict.MEETS_POLICY:
        return decision.verdict
    tree = CriteriaTree(decision.criteria)
    if tree.roots and all(tree.supports_met(root) for root in tree.roots):
        return Verdict.MEETS_POLICY
    log.warning("decision for policy %s claims meets-policy without met criteria; not shown as met",
                decision.policy_id)
    statuses = {root.status for root in tree.roots}
    if Status.NOT_MET in statuses:
        return Verdict.DOES_NOT_MEET
    if any(tree.retrieval_failed(root) for root in tree.roots):
        return Verdict.INDETERMINATE
    return Verdict.DOCUMENTATION_INCOMPLETE


# --------------------------------------------------------------------------------------------------
# Cards
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardSettings:
    """What the deployment configures: the payer name shown as the card source (CRD resp-4) and the
    public page of each policy, by policy id (absolute http(s) URLs; others are ignored)."""

    payer_name: str
    policy_links: Mapping[str, str] | None = None

    def __post_init__(self):
        if not plain(self.payer_name):
            raise ValueError("payer_name must be a non-empty name (card source.label)")

    def policy_url(self, policy_id: str) -> str | None:
        url = (self.policy_links or {}).get(policy_id)
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            log.warning("policy URL for %s is not an absolute http(s) URL; no link", policy_id)
            return None
        return url


def decision_cards(
    decisions: Iterable[PolicyDecision], settings: CardSettings, max_cards: int | None = None
) -> list[Card]:
    """One card per decision, most important first (does not meet, indeterminate, documentation incomplete,
    meets; otherwise in order).
    ``max_cards`` (the EHR's ``davinci-crd.configuration`` ``max-cards``) keeps only the most
    important ones."""
    if max_cards is not None and max_cards < 0:
        raise ValueError("max_cards must be zero or more")
    ranked = sorted(decisions, key=lambda d: _IMPORTANCE[shown_verdict(d)])
    cards = [decision_card(d, settings) for d in (ranked if max_cards is None else ranked[:max_cards])]
    return cards


def decision_card(decision: PolicyDecision, settings: CardSettings) -> Card:
    """The card for one in-scope order."""
    verdict = shown_verdict(decision)
    tree = CriteriaTree(decision.criteria)
    machine_readable = {**_without_empty(decision.as_extension()), "verdict": verdict.value}
    url = settings.policy_url(decision.policy_id)
    links = (Link(plain(f"{decision.policy_id} policy: {decision.policy_title}", 120), url),) if url else ()
    return Card(
        summary=card_summary(decision, verdict, tree),
        indicator=INDICATOR[verdict],
        detail=card_detail(decision, verdict, tree),
        source=Source(plain(settings.payer_name), topic=TOPIC),
        links=links,
        extension={
            DECISION_EXTENSION: machine_readable,
            ASSOCIATED_RESOURCE_EXTENSION: [{"reference": decision.order}],
        },
    )


def card_decision(card: object) -> dict | None:
    """The ``cart-cds.decision`` value of a card in JSON form (as answered, or as a client received it),
    or None when the card carries none. The one reader of what ``decision_card`` writes: the audit trail,
    the offline evaluation, the sandbox expectations and the bench all read decisions through it."""
    extension = card.get("extension") if isinstance(card, dict) else None
    decision = extension.get(DECISION_EXTENSION) if isinstance(extension, dict) else None
    return decision if isinstance(decision, dict) else None


# The two optional card types Inferno's required-card group looks for, each under its own CRD configuration
# option (dev-5; codes from the CRD card-type value set, dev-7):
# - External Reference ("appropriate-use"): a link to the payer's policy document, which states the criteria
#   and the documentation the payer needs (resp-18/19: absolute links only; resp-20: the detail summarises it);
#   only where the deployment configures the document's URL (CART_CDS_POLICY_LINKS);
# - Instructions ("limits"): the approval limits under which coverage holds, as text only (no links, no
#   suggestions; resp-23: never a portal). Off by default: the coverage-information details carry the same
#   terms and resp-12 asks for no card repeating a system action.
POLICY_DOCUMENT_TOPIC = Coding("appropriate-use", CARD_TYPE_SYSTEM, "Appropriate Use")
LIMITS_TOPIC = Coding("limits", CARD_TYPE_SYSTEM, "Limits")


def policy_document_card(decision: PolicyDecision, settings: CardSettings) -> Card | None:
    """External Reference card: the policy document of ``decision`` (None when no URL is configured)."""
    url = settings.policy_url(decision.policy_id)
    if url is None:
        return None
    return Card(
        summary=plain(f"{decision.policy_id} policy: criteria and documentation for {decision.product}", SUMMARY_LIMIT),
        indicator="info",
        detail=(f"The payer's policy **{escape(decision.policy_id)}** ({escape(decision.policy_title)}, version "
                f"{escape(decision.policy_version)}) lists the medical-necessity criteria for "
                f"**{escape(decision.product)}** and the documentation a prior authorization request must include."),
        source=Source(plain(settings.payer_name), topic=POLICY_DOCUMENT_TOPIC),
        links=(Link(plain(f"{decision.policy_id} policy: {decision.policy_title}", 120), url),),
        extension={ASSOCIATED_RESOURCE_EXTENSION: [{"reference": decision.order}]},
    )


def approval_limits_card(decision: PolicyDecision, settings: CardSettings) -> Card | None:
    """Instructions card: the approval limits for an order coverage may hold for (meets the policy or only
    documentation is missing); None for an order that does not meet it or could not be assessed."""
    if shown_verdict(decision) not in (Verdict.MEETS_POLICY, Verdict.DOCUMENTATION_INCOMPLETE):
        return None
    return Card(
        summary=plain(f"{decision.product}: approval limits under {decision.policy_id}", SUMMARY_LIMIT),
        indicator="info",
        detail="\n".join(_approval_terms(decision)),
        source=Source(plain(settings.payer_name), topic=LIMITS_TOPIC),
        extension={ASSOCIATED_RESOURCE_EXTENSION: [{"reference": decision.order}]},
    )


def unreadable_product_card(order: dict, settings: CardSettings) -> Card:
    """CRD resp-43 for an order whose product is a Medication outside the request that could not be read:
    which policy applies cannot be told, so the order is neither dropped nor judged; the card says the
    check is indeterminate for a technical reason (signing again retries the read)."""
    reference = f"{order.get('resourceType')}/{order.get('id')}"
    named = (order.get("medicationReference") or {}).get("display")
    what = plain(named) if isinstance(named, str) and plain(named) else "the ordered medication"
    return Card(
        summary=plain(f"{what}: coverage check incomplete -- the ordered medication could not be read", SUMMARY_LIMIT),
        indicator="warning",
        detail=(f"The order for **{escape(what)}** names its medication by a reference the EHR's FHIR server "
                "did not return (a technical failure), so whether a coverage policy applies could not be "
                "determined. This is not a denial; signing again later retries the read."),
        source=Source(plain(settings.payer_name), topic=TOPIC),
        extension={ASSOCIATED_RESOURCE_EXTENSION: [{"reference": reference}]},
    )


def card_summary(decision: PolicyDecision, verdict: Verdict, tree: CriteriaTree) -> str:
    """"<product>: <verdict in words>", under 140 characters; the product name is shortened (then
    cut) only when the whole would not fit."""
    policy = plain(decision.policy_id, 40)
    if verdict is Verdict.MEETS_POLICY:
        words = f"meets {policy} criteria -- prior auth with documentation still required"
    elif verdict is Verdict.DOES_NOT_MEET:
        words = f"does not meet {policy} -- {_count(len(tree.at_issue(Status.NOT_MET)), 'criterion', 'criteria')} not met"
    elif verdict is Verdict.DOCUMENTATION_INCOMPLETE:
        words = f"documentation incomplete for {policy} -- {_count(len(tree.at_issue(Status.UNKNOWN)), 'item', 'items')} to submit"
    else:
        words = f"{policy} check incomplete -- part of the record could not be retrieved"
    room = SUMMARY_LIMIT - len(words) - 2
    product = plain(decision.product) or plain(decision.order)
    if len(product) > room:
        product = product.split(" (", 1)[0]
    return f"{plain(product, max(room, 1))}: {words}"


def card_detail(decision: PolicyDecision, verdict: Verdict, tree: CriteriaTree) -> str:
    """The Markdown detail: verdict sentence, coverage note, then the verdict's own sections."""
    render = {
        Verdict.DOES_NOT_MEET: _does_not_meet,
        Verdict.DOCUMENTATION_INCOMPLETE: _documentation_incomplete,
        Verdict.INDETERMINATE: _indeterminate,
        Verdict.MEETS_POLICY: _meets,
    }[verdict]
    blocks = render(decision, tree)
    if decision.coverage is None:
        blocks.insert(1, "**Coverage not retrieved:** the member's Coverage could not be retrieved from the "
                         "EHR (a technical failure, not a finding that the member has no coverage), so no "
                         "coverage information was recorded on the order.")
    blocks.append(f"Policy {escape(decision.policy_id)} version {escape(decision.policy_version)}: "
                  f"{escape(decision.policy_title)}.")
    return "\n\n".join(b for b in blocks if b)


def _does_not_meet(decision: PolicyDecision, tree: CriteriaTree) -> list[str]:
    not_met = tree.at_issue(Status.NOT_MET)
    blocks = [
        f"**{escape(decision.product)}** does not meet {escape(decision.policy_id)}: "
        f"{_count(len(not_met), 'criterion', 'criteria')} not met on the record. "
        "The order would not be approved under this policy as written.",
        "**Not met**\n" + _criterion_list(not_met, tree, Status.NOT_MET),
    ]
    if decision.referral is not None:
        blocks.append(_referral(decision))
    return blocks + _unknown_blocks(tree, not_shown_heading="Also not shown in the record")


def _documentation_incomplete(decision: PolicyDecision, tree: CriteriaTree) -> list[str]:
    unknown = tree.at_issue(Status.UNKNOWN)
    checklist = "\n".join(
        f"- [ ] **{escape(c.id)}** {escape(_documentation(c, tree))} ({escape(c.reason)})" for c in unknown
    )
    return [
        f"**{escape(decision.product)}**: documentation incomplete for {escape(decision.policy_id)}. "
        f"The record does not show {_count(len(unknown), 'criterion', 'criteria')}; submit the "
        "documentation below with the prior authorization request.",
        "**Documentation to submit**\n" + (checklist or "- [ ] The documentation the policy lists for every criterion"),
        _met_so_far(tree),
    ]


def _indeterminate(decision: PolicyDecision, tree: CriteriaTree) -> list[str]:
    return [
        f"**{escape(decision.product)}**: the {escape(decision.policy_id)} check could not be completed "
        "because part of the patient's record could not be retrieved. A clinical judgement on these "
        "criteria is pending; this is not a denial. Signing again later retries the retrieval.",
        *_unknown_blocks(tree, not_shown_heading="Still to be assessed"),
        _met_so_far(tree),
    ]


def _unknown_blocks(tree: CriteriaTree, not_shown_heading: str) -> list[str]:
    """Unknown criteria in two groups that must never be confused: those whose record part could not
    be retrieved (with the retrieval reasons), and those the retrieved record does not show."""
    unknown = tree.at_issue(Status.UNKNOWN)
    failed = tuple(c for c in unknown if tree.retrieval_failed(c))
    others = tuple(c for c in unknown if not tree.retrieval_failed(c))
    blocks = []
    if failed:
        blocks.append("**Could not be assessed (record not retrieved)**\n" + "\n".join(
            f"- **{escape(c.id)}** {escape(c.text)}: {_retrieval_reasons(c, tree)}" for c in failed
        ))
    if others:
        blocks.append(f"**{not_shown_heading}**\n" + "\n".join(
            f"- **{escape(c.id)}** {escape(c.text)}" for c in others
        ))
    return blocks


def _retrieval_reasons(criterion: CriterionResult, tree: CriteriaTree) -> str:
    """Why the record part behind ``criterion`` is missing, from its own and its descendants' reasons."""
    chain = (criterion, *tree.descendants(criterion, Status.UNKNOWN))
    return "; ".join(escape(r) for r in _unique(c.reason for c in chain if c.retrieval_failed))


def _meets(decision: PolicyDecision, tree: CriteriaTree) -> list[str]:
    pdac = (" and Precision Drug Action Committee (PDAC) utilization management review"
            if decision.approval.pdac_review_required else "")
    met = tree.at_issue(Status.MET)
    return [
        f"**{escape(decision.product)}** meets the {escape(decision.policy_id)} criteria on the record. "
        f"Prior authorization with documentation{pdac} still apply: submit this order with the "
        "supporting documentation.",
        "**Approval terms**\n" + "\n".join(_approval_terms(decision)),
        "**Evidence**\n" + _criterion_list(met, tree, Status.MET),
    ]


def _approval_terms(decision: PolicyDecision) -> list[str]:
    """The policy's approval terms for the order, as Markdown list items."""
    terms = decision.approval
    allowance = (f"- Tocilizumab: up to {terms.tocilizumab_max_doses} doses, at most "
                 f"{terms.tocilizumab_max_mg_per_dose:g} mg per dose")
    lines = [f"- Duration of approval: {terms.duration_months} months", allowance]
    if decision.order_kind != "tocilizumab":
        lines.insert(1, f"- Doses: {terms.doses}")
    if terms.pdac_review_required:
        lines.append("- PDAC utilization management review required")
    if terms.hcpcs and decision.order_kind != "tocilizumab":  # the policy's codes bill its own product
        lines.append(f"- Billing code (HCPCS): {', '.join(escape(code) for code in terms.hcpcs)}")
    return lines


def _referral(decision: PolicyDecision) -> str:
    """I.B: the policy to refer to for the member's line of business (all of them when unknown)."""
    referral = decision.referral
    assert referral is not None, "called for a decision with a referral"
    policies = [p for p in referral.policies if p.line_of_business == decision.line_of_business] or list(
        referral.policies
    )
    lines = [
        f"- {escape(LINE_OF_BUSINESS_LABEL.get(p.line_of_business, p.line_of_business))}: "
        f"**{escape(p.policy_id)}** ({escape(REFERRAL_KIND_LABEL.get(p.kind, p.kind))})"
        for p in policies
    ]
    return "**Referral**: " + escape(referral.reason) + ("\n" + "\n".join(lines) if lines else "")


def _criterion_list(criteria: Iterable[CriterionResult], tree: CriteriaTree, status: Status) -> str:
    """The criteria as list items with their evidence, each distinct text escaped once (``_Escaped``)."""
    escaped = _Escaped()
    return "\n".join(_criterion_item(c, tree, status, escaped) for c in criteria)


def _criterion_item(criterion: CriterionResult, tree: CriteriaTree, status: Status, escaped: _Escaped) -> str:
    """A list item for a criterion, its evidence, and its descendants of the same status, nested."""
    lines = [_one_criterion(criterion, "", escaped)]
    depth = {criterion.id: 0}
    for child_parent, child in _with_parents(criterion, tree, status):
        depth[child.id] = depth[child_parent] + 1
        lines.append(_one_criterion(child, "  " * depth[child.id], escaped))
    return "\n".join(lines)


def _with_parents(criterion: CriterionResult, tree: CriteriaTree, status: Status):
    for child in tree.children(criterion):
        if child.status is status:
            yield criterion.id, child
            yield from _with_parents(child, tree, status)


def _one_criterion(criterion: CriterionResult, indent: str, escaped: _Escaped) -> str:
    line = f"{indent}- **{escaped[criterion.id]}** {escaped[criterion.text]}"
    reason = escaped[criterion.reason]
    if reason:
        line += f"  \n{indent}  {reason}"
    for evidence in criterion.evidence:
        line += f"\n{indent}  - {evidence_text(evidence, escaped)}"
    return line


def evidence_text(evidence: Evidence, escaped: _Escaped) -> str:
    """"Observation/m1 (valueQuantity): 0.3 g/dL, 2026-11-01", escaped."""
    text = f"{escaped[evidence.reference]} ({escaped[evidence.element]})"
    value, unit = escaped[evidence.value], escaped[evidence.unit]
    value = f"{value} {unit}" if value and unit else value or unit
    if value:
        text += f": {value}"
    when = escaped[evidence.date]
    if when:
        text += f", {when}"
    return text


class _Escaped(dict):
    """``escape`` of the text of one card's criteria, each distinct string escaped once (a typical
    meets-policy card escapes ~830 strings, ~180 of them distinct). Built per card, never shared, so
    no record text outlives the card it was rendered for. The criteria and evidence fields are
    strings (or None), so equal keys always have equal escapes."""

    def __missing__(self, text: str | None) -> str:
        self[text] = escaped = escape(text)
        return escaped


def _documentation(criterion: CriterionResult, tree: CriteriaTree) -> str:
    """What to submit for an unknown criterion: its own documentation text, else the first one found
    below it, else the policy's words."""
    for candidate in (criterion, *tree.descendants(criterion, Status.UNKNOWN)):
        if candidate.documentation is not None and plain(candidate.documentation):
            return candidate.documentation
    return criterion.text


def _met_so_far(tree: CriteriaTree) -> str:
    met = tree.at_issue(Status.MET)
    return f"Shown on the record: {', '.join(escape(c.id) for c in met)}." if met else ""


def _without_empty(value):
    """``value`` without null or empty members (CDS Hooks forbids them; a decision with no criteria
    would otherwise carry ``"criteria": []``). Scalars are tested in place rather than recursed into:
    this runs over every evidence item of every card."""
    if isinstance(value, dict):
        pruned = {}
        for key, member in value.items():
            if isinstance(member, (dict, list)):
                member = _without_empty(member)
            if member or not _is_empty(member):  # truthy values are never empty
                pruned[key] = member
        return pruned
    if isinstance(value, list):
        kept = []
        for member in value:
            if isinstance(member, (dict, list)):
                member = _without_empty(member)
            if member or not _is_empty(member):  # truthy values are never empty
                kept.append(member)
        return kept
    return value


def _is_empty(value) -> bool:
    """None, "", [] or {} (JSON's empty values; 0 and false are values)."""
    return value is None or (not value and isinstance(value, (str, list, dict)))


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if plain(i)))
