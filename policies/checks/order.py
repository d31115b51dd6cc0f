"""Checks about the order itself: the CAR-T cell dose and the co-signed tocilizumab allowance."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from fhir_mappings.facts import Evidence, FactSource, Unknown
from policies.checks.registry import NON_NEGATIVE, LeafResult, OrderContext, check, unknown_fact
from policies.decision import Status

DOSE_ELEMENT = "dosageInstruction[0].doseAndRate[0].doseQuantity"


@check("cell_dose_at_most", params={"max_millions": NON_NEGATIVE, "basis": {"enum": ["absolute"]}})
def cell_dose_at_most(facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext) -> LeafResult:
    """The ordered CAR-positive T-cell dose against an absolute limit (10^6 cells). A weight-based
    order cannot be compared with an absolute limit without a weight the policy does not define, so it
    is unknown (state the total dose)."""
    fact = facts.cell_dose(ctx.order)
    if isinstance(fact, Unknown):
        return unknown_fact(fact, "Cell dose")
    dose, limit = fact.value, params["max_millions"]
    reference = facts.ordered_product(ctx.order).reference
    unit = "10*6/kg" if dose.per_kg else "10*6"
    evidence = fact.evidence or (Evidence(reference, DOSE_ELEMENT, f"{dose.millions_of_cells:g}", unit),)
    if dose.per_kg:
        return LeafResult(
            Status.UNKNOWN,
            f"Order states {dose.millions_of_cells:g} x 10^6 cells/kg; the limit is {limit:g} x 10^6 cells in total",
            evidence,
        )
    shown = f"Ordered dose {dose.millions_of_cells:g} x 10^6 CAR-positive T cells"
    if dose.millions_of_cells <= limit:
        return LeafResult(Status.MET, f"{shown} (limit {limit:g} x 10^6)", evidence)
    return LeafResult(Status.NOT_MET, f"{shown} exceeds the limit of {limit:g} x 10^6", evidence)


@check(
    "tocilizumab_within_allowance",
    params={"max_doses": {"type": "integer", "minimum": 1}, "max_mg_per_dose": NON_NEGATIVE},
)
def tocilizumab_within_allowance(
    facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext
) -> LeafResult:
    fact = facts.tocilizumab_request(ctx.order)
    if isinstance(fact, Unknown):
        return unknown_fact(fact, "Tocilizumab order")
    request, max_doses, max_mg = fact.value, params["max_doses"], params["max_mg_per_dose"]
    problems, missing = [], []
    if request.dose_mg_per_administration is None:
        missing.append("dose per administration")
    elif request.dose_mg_per_administration > max_mg:
        problems.append(f"{request.dose_mg_per_administration:g} mg per dose exceeds {max_mg:g} mg")
    if request.number_of_doses is None:
        missing.append("number of doses")
    elif request.number_of_doses > max_doses:
        problems.append(f"{request.number_of_doses} doses exceed {max_doses}")
    if problems:
        return LeafResult(Status.NOT_MET, "; ".join(problems), fact.evidence)
    if missing:
        return LeafResult(Status.UNKNOWN, f"Tocilizumab order does not state the {' or '.join(missing)}",
                          fact.evidence)
    return LeafResult(
        Status.MET,
        f"{request.number_of_doses} dose(s) of {request.dose_mg_per_administration:g} mg "
        f"(allowance: up to {max_doses} doses of up to {max_mg:g} mg)",
        fact.evidence,
    )
