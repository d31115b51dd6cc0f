"""Payer policies as data, and the engine that evaluates them on a record's facts (no HTTP, no raw FHIR).

The names below are the package's public surface: what the service layer may use, listed with their
contracts in docs/architecture.md (tests/test_architecture.py keeps the two in step).
"""

from policies.applicability import ScopedOrder, in_scope_orders
from policies.decision import CriterionResult, PolicyDecision, Status, Verdict
from policies.engine import evaluate, evaluate_tocilizumab
from policies.loader import shipped_policies
from policies.model import Policy

__all__ = [
    "CriterionResult",
    "Policy",
    "PolicyDecision",
    "ScopedOrder",
    "Status",
    "Verdict",
    "evaluate",
    "evaluate_tocilizumab",
    "in_scope_orders",
    "shipped_policies",
]
