"""Checks about the member and the prescriber: age, prescriber specialty, CNS conditions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from fhir_mappings.assertions import PRESENT, UNCERTAIN
from fhir_mappings.facts import ConditionFinding, Evidence, FactSource, Unknown
from fhir_mappings.terminology import value_set
from policies.checks.registry import VALUE_SET_LIST, LeafResult, OrderContext, check, unknown_fact
from policies.decision import Status

ACTIVE_STATUSES = frozenset({"active", "recurrence", "relapse"})


@check("age_at_least", params={"min_years": {"type": "integer", "minimum": 0}})
def age_at_least(facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext) -> LeafResult:
    """Met when even the youngest age the birthDate allows reaches ``min_years``, not met when even the
    oldest falls short; a partial birthDate whose age range straddles the threshold is unknown."""
    fact = facts.age_bounds(as_of)
    if isinstance(fact, Unknown):
        return unknown_fact(fact, "Age")
    minimum = params["min_years"]
    low, high = fact.value.minimum, fact.value.maximum
    age = f"Age {low}" if low == high else f"Age {low} to {high} (partial birthDate)"
    shown = f"{age} on {as_of.isoformat()} (required >= {minimum})"
    if low >= minimum:
        return LeafResult(Status.MET, shown, fact.evidence)
    if high < minimum:
        return LeafResult(Status.NOT_MET, shown, fact.evidence)
    return LeafResult(Status.UNKNOWN, f"{shown}: the full birthDate decides", fact.evidence)


@check(
    "prescriber_specialty_in",
    params={"value_set": {"type": "string"}},
    value_set_params=("value_set",),
)
def prescriber_specialty_in(
    facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext
) -> LeafResult:
    """Met when the ordering clinician's specialty is in the value set. Another specialty is not a
    contradiction: the policy also accepts prescribing "in consultation with" a specialist, which the
    record may not show, so it is unknown (documentation of the consultation)."""
    fact = facts.ordering_specialties(ctx.order)
    if isinstance(fact, Unknown):
        return unknown_fact(fact, "Prescriber specialty")
    wanted = value_set(params["value_set"])
    matching = [c for c in fact.value if wanted.contains(c.system, c.code)]
    if matching:
        name = matching[0].display or matching[0].code
        return LeafResult(Status.MET, f"Ordering clinician's specialty: {name}", fact.evidence)
    shown = ", ".join(c.display or c.code or "?" for c in fact.value) or "none recorded"
    return LeafResult(
        Status.UNKNOWN,
        f"Ordering clinician's specialty ({shown}) is not oncology/hematology; consultation not shown",
        fact.evidence,
    )


def _condition_evidence(finding: ConditionFinding) -> Evidence:
    onset = finding.onset or finding.recorded
    return Evidence(
        finding.reference,
        "Condition.code" if finding.code.code else "Condition.code.text",
        finding.code.code or finding.code.display,
        date=onset.isoformat() if onset else None,
    )


def _describe(finding: ConditionFinding) -> str:
    name = finding.code.display or finding.code.code or finding.value_set
    words = "" if finding.assertion == PRESENT else f", recorded as {finding.assertion}"
    return f"{name} ({finding.clinical_status or 'status not recorded'}{words})"


def _counts(finding: ConditionFinding, history: tuple[str, ...]) -> bool | None:
    """Whether the finding is one the exclusion names: True, False, or None when the record leaves it
    open. Of a history value set any asserted entry counts, whatever its status ("history of seizure",
    resolved). Of an active-only value set an entry counts when its clinical status is active and its
    words do not place it in the past; no status, or "history of" on an active entry, is open. An
    uncertain entry ("rule out", provisional) is open in either."""
    if finding.assertion == UNCERTAIN:
        return None
    if finding.value_set in history:
        return True
    if finding.clinical_status is None:  # the finding is of an active-only value set
        return None
    if finding.clinical_status not in ACTIVE_STATUSES:
        return False
    return True if finding.assertion == PRESENT else None


@check(
    "no_conditions_in",
    params={"value_sets": VALUE_SET_LIST, "active_value_sets": VALUE_SET_LIST},
    optional=("active_value_sets",),
    value_set_params=("value_sets", "active_value_sets"),
)
def no_conditions_in(facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext) -> LeafResult:
    """Exclusion: met only when the conditions were retrieved in full and none counts (``_counts``);
    not met when one does; unknown when one is left open (whether it is active, or whether it is there
    at all), never silently ignored."""
    history = tuple(params["value_sets"])
    active_only = tuple(params.get("active_value_sets", ()))
    fact = facts.conditions_in(history + active_only, as_of)
    if isinstance(fact, Unknown):
        return unknown_fact(fact, "Conditions")
    judged = [(f, _counts(f, history)) for f in fact.value]
    present = [f for f, counts in judged if counts is True]
    if present:
        listed = "; ".join(_describe(f) for f in present)
        return LeafResult(Status.NOT_MET, f"Record shows {listed}", tuple(_condition_evidence(f) for f in present))
    unclear = [f for f, counts in judged if counts is None]
    if unclear:
        listed = "; ".join(_describe(f) for f in unclear)
        return LeafResult(
            Status.UNKNOWN,
            f"Record shows {listed}; whether it is present and active is not clear",
            tuple(_condition_evidence(f) for f in unclear),
        )
    return LeafResult(Status.MET, "No such condition on the record (conditions retrieved in full)", fact.evidence)
