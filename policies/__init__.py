"""Payer policies as data, and the engine that evaluates them on a record's facts (no HTTP, no raw FHIR).

The names below are the package's public surface: what the service layer may use, listed with their
contracts in docs/architecture.md (tests/test_architecture.py keeps the two in step).
"""

from policies.applicability import ExtraCodes, ScopedOrder, in_scope_orders
from policies.checks import LeafResult
from policies.decision import (
    ApprovalTerms,
    CriterionResult,
    PolicyDecision,
    Referral,
    ReferralPolicy,
    Status,
    Verdict,
)
from policies.describe import describe, in_force_periods
from policies.engine import evaluate, evaluate_tocilizumab, own_result, redecide
from policies.loader import configured_policies, shipped_policies
from policies.model import Criterion, Policy, in_force

__all__ = [
    "ApprovalTerms",
    "Criterion",
    "CriterionResult",
    "ExtraCodes",
    "LeafResult",
    "Policy",
    "PolicyDecision",
    "Referral",
    "ReferralPolicy",
    "ScopedOrder",
    "Status",
    "Verdict",
    "configured_policies",
    "describe",
    "evaluate",
    "evaluate_tocilizumab",
    "in_force",
    "in_force_periods",
    "in_scope_orders",
    "own_result",
    "redecide",
    "shipped_policies",
]
