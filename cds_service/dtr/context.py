"""What the order-sign hook keeps for one CRD ``coverage-assertion-id`` so that a later DTR call can be
answered without the EHR: the member, the Coverage, the orders and the decisions made for them, with an
expiry. ``to_json``/``from_json`` give the stored form (plain JSON, loss-free: ``from_json(to_json(c))
== c``), for a store kept beside the audit trail with the same care for patient data and retention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from fhir_mappings import Evidence
from policies import (
    ApprovalTerms,
    CriterionResult,
    PolicyDecision,
    Referral,
    ReferralPolicy,
    Status,
    Verdict,
)


@dataclass(frozen=True)
class DecisionContext:
    """EHR-relative references (``Type/id``) as the hook saw them, and the decisions for the orders."""

    assertion_id: str
    patient: str  # "Patient/abc"
    coverage: str  # "Coverage/abc"
    orders: tuple[str, ...]  # "MedicationRequest/abc"
    decisions: tuple[PolicyDecision, ...]
    expires: datetime  # timezone-aware


def to_json(context: DecisionContext) -> dict:
    data = asdict(context)
    data["expires"] = context.expires.isoformat()
    for decision in data["decisions"]:
        decision["verdict"] = Verdict(decision["verdict"]).value
        for criterion in decision["criteria"]:
            criterion["status"] = Status(criterion["status"]).value
    return data


def from_json(data: dict) -> DecisionContext:
    return DecisionContext(
        assertion_id=data["assertion_id"],
        patient=data["patient"],
        coverage=data["coverage"],
        orders=tuple(data["orders"]),
        decisions=tuple(_decision(d) for d in data["decisions"]),
        expires=datetime.fromisoformat(data["expires"]),
    )


def _decision(data: dict) -> PolicyDecision:
    referral = data["referral"]
    return PolicyDecision(**{
        **data,
        "verdict": Verdict(data["verdict"]),
        "criteria": tuple(_criterion(c) for c in data["criteria"]),
        "missing_documentation": tuple(data["missing_documentation"]),
        "approval": ApprovalTerms(**{**data["approval"], "hcpcs": tuple(data["approval"]["hcpcs"])}),
        "referral": None if referral is None else Referral(
            referral["reason"], tuple(ReferralPolicy(**p) for p in referral["policies"])),
    })


def _criterion(data: dict) -> CriterionResult:
    return CriterionResult(**{
        **data,
        "status": Status(data["status"]),
        "evidence": tuple(Evidence(**e) for e in data["evidence"]),
        "children": tuple(data["children"]),
    })
