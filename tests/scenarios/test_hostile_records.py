"""Malformed FHIR content never crashes the evaluation.

EHRs (and attackers) send resources whose elements have the wrong JSON type: ``"coding": true``, a
string where an object belongs, a list where a string belongs. Starting from realistic sandbox records,
hypothesis replaces one element anywhere in the record or the draft order with arbitrary JSON, then runs
the whole mapping + policy evaluation. It must answer (any verdict) and never raise.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_mappings.clinical_facts import ClinicalFacts
from fhir_mappings.patient_record import PatientRecord
from policies.decision import Verdict
from policies.engine import evaluate, evaluate_tocilizumab
from policies.loader import shipped_policies
from tests.hypothesis_budget import examples
from tests.json_positions import json_positions

SANDBOX = Path(__file__).parents[2] / "sandbox"
AS_OF = date(2026, 11, 24)
SCENARIOS = ("abecma-meets-all-criteria", "kite772-meets-all-criteria", "tocilizumab-within-allowance")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _load(scenario: str) -> tuple[dict, dict]:
    hook = json.loads((SANDBOX / "hooks" / f"{scenario}-prefetch.json").read_text(encoding="utf-8"))
    return hook["prefetch"], hook["context"]


def _set(value, path, new):
    target = value
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new


def _case(scenario: str) -> tuple[str, dict]:
    prefetch, context = _load(scenario)
    orders = [e["resource"] for e in context["draftOrders"]["entry"]]
    return context["patientId"], copy.deepcopy({"prefetch": prefetch, "orders": orders})


@st.composite
def mutations(draw):
    """(scenario, [(path, new value), ...]): small, so a failing example prints readably."""
    scenario = draw(st.sampled_from(SCENARIOS))
    paths = [p for p in json_positions(_case(scenario)[1]) if len(p) > 2]  # inside a resource
    changes = draw(st.lists(st.tuples(st.sampled_from(paths), json_values), min_size=1, max_size=3))
    return scenario, changes


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_evaluation_never_raises_on_malformed_resources(mutation):
    scenario, changes = mutation
    patient_id, data = _case(scenario)
    for path, value in changes:
        try:
            _set(data, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier change removed this position
            pass
    orders = tuple(o for o in data["orders"] if isinstance(o, dict))
    record = PatientRecord.build(patient_id, [*data["prefetch"].values(), *orders])
    facts = ClinicalFacts(record)
    policy_481, policy_769 = sorted(shipped_policies(), key=lambda p: p.id)
    for order in orders:
        for policy in (policy_481, policy_769):
            assert evaluate(policy, facts, order, AS_OF, orders).verdict in Verdict
            assert evaluate_tocilizumab(policy, facts, order, AS_OF, orders).verdict in Verdict
