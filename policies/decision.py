"""The policy engine's answer for one in-scope order: a verdict that explains itself criterion by criterion.

This is the contract between ``policies`` (which produces it) and ``cds_service`` (which renders cards,
the CRD coverage-information action and the ``cart-cds.decision`` extension from it). Its JSON form
(``as_extension``) is the machine-readable decision of ``decision-contract.md``.

Verdict rules (decision contract):
- ``does-not-meet``: at least one required criterion is not met on the record;
- ``indeterminate``: nothing is contradicted, and an unknown stems from a retrieval failure;
- ``documentation-incomplete``: nothing is contradicted, some criterion cannot be shown from the record;
- ``meets-policy``: every required criterion is met.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from fhir_mappings.facts import Evidence


class Status(str, enum.Enum):
    MET = "met"
    NOT_MET = "not-met"
    UNKNOWN = "unknown"


class Verdict(str, enum.Enum):
    MEETS_POLICY = "meets-policy"
    DOES_NOT_MEET = "does-not-meet"
    DOCUMENTATION_INCOMPLETE = "documentation-incomplete"
    INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class CriterionResult:
    """One evaluated criterion (leaf or group), keyed by the policy's own numbering."""

    id: str  # e.g. "I.A.4.a.i", "II.A.1", "III.B", "I.A.approval.tocilizumab" for the tocilizumab allowance
    text: str  # the policy's words
    status: Status
    reason: str
    evidence: tuple[Evidence, ...] = ()
    retrieval_failed: bool = False  # unknown because the data could not be obtained
    documentation: str | None = None  # what to submit when unknown (from the policy file)
    children: tuple[str, ...] = ()  # ids of the child criteria of a group

    def as_json(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "status": self.status.value, "reason": self.reason}
        if self.evidence:  # CDS Hooks 2.0 forbids empty arrays, so no evidence means no key
            out["evidence"] = [e.as_json() for e in self.evidence]
        if self.retrieval_failed:
            out["retrievalFailed"] = True
        return out


@dataclass(frozen=True)
class ReferralPolicy:
    line_of_business: str  # commercial | marketplace | ichra | medicaid
    kind: str  # no-coverage-criteria | non-formulary | off-label
    policy_id: str  # e.g. "CP.CPA.09"


@dataclass(frozen=True)
class Referral:
    """Section I.B / II.B: the request is not for multiple myeloma, so another policy decides."""

    reason: str
    policies: tuple[ReferralPolicy, ...]


@dataclass(frozen=True)
class ApprovalTerms:
    duration_months: int
    doses: int
    tocilizumab_max_doses: int
    tocilizumab_max_mg_per_dose: float
    pdac_review_required: bool
    hcpcs: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyDecision:
    order: str  # "MedicationRequest/abc", exactly as in draftOrders
    order_kind: str  # "car-t" | "tocilizumab"
    product: str  # clinician-facing product name, e.g. "Abecma (idecabtagene vicleucel)"
    policy_id: str  # "CP.PHAR.481"
    policy_version: str
    policy_title: str
    verdict: Verdict
    criteria: tuple[CriterionResult, ...]
    missing_documentation: tuple[str, ...]
    approval: ApprovalTerms
    referral: Referral | None = None
    coverage: str | None = None  # "Coverage/abc" used for the decision, when one was found
    line_of_business: str | None = None

    def with_status(self, status: Status) -> tuple[CriterionResult, ...]:
        return tuple(c for c in self.criteria if c.status is status)

    @property
    def retrieval_failures(self) -> tuple[CriterionResult, ...]:
        return tuple(c for c in self.criteria if c.status is Status.UNKNOWN and c.retrieval_failed)

    def as_extension(self) -> dict:
        """The ``cart-cds.decision`` card extension value (decision contract)."""
        out: dict[str, Any] = {
            "order": self.order,
            "policy": self.policy_id,
            "policyVersion": self.policy_version,
            "verdict": self.verdict.value,
            "criteria": [c.as_json() for c in self.criteria],
        }
        if self.missing_documentation:
            out["missingDocumentation"] = list(self.missing_documentation)
        if self.referral is not None:
            out["referral"] = {
                "reason": self.referral.reason,
                "policies": [
                    {"lineOfBusiness": p.line_of_business, "kind": p.kind, "policy": p.policy_id}
                    for p in self.referral.policies
                ],
            }
        return out
