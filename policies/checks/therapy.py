"""Checks about treatment history: prior lines and classes, prior and concurrent exposures."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from fhir_mappings.facts import Evidence, Exposure, FactSource, LinesOfTherapy, Unknown
from fhir_mappings.terminology import value_set
from policies.checks.registry import VALUE_SET_LIST, LeafResult, OrderContext, check, unknown_fact
from policies.decision import Status

LINE_PARAMS = {"consolidation_in_line": {"type": "boolean"}}
LABEL = {"type": "string", "minLength": 1}
EXAMPLES = {"type": "array", "items": {"type": "string"}}


def _line_evidence(lines: LinesOfTherapy, drug_class: str | None = None) -> tuple[Evidence, ...]:
    out = []
    for line in lines.lines:
        if drug_class is not None and drug_class not in line.classes:
            continue
        for ref in line.references:
            out.append(Evidence(ref, f"line of therapy {line.number}", ", ".join(line.ingredients),
                                date=line.start.isoformat() if line.start else None))
    return tuple(out)


@check("prior_lines_at_least", params={"minimum": {"type": "integer", "minimum": 1}, **LINE_PARAMS})
def prior_lines_at_least(facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext) -> LeafResult:
    """The record gives prior lines as an interval [minimum, maximum]: met only if the minimum
    suffices, not met only if even the maximum falls short, unknown in between."""
    fact = facts.lines_of_therapy(as_of, params["consolidation_in_line"])
    if isinstance(fact, Unknown):
        return unknown_fact(fact, "Prior lines of therapy")
    lines = fact.value
    wanted = params["minimum"]
    evidence = fact.evidence or _line_evidence(lines)
    counted = str(lines.minimum) if lines.minimum == lines.maximum else f"{lines.minimum} to {lines.maximum}"
    shown = f"Record shows {counted} prior line(s) of therapy (required >= {wanted})"
    if lines.minimum >= wanted:
        return LeafResult(Status.MET, shown, evidence)
    if lines.maximum < wanted:
        return LeafResult(Status.NOT_MET, shown, evidence)
    return LeafResult(Status.UNKNOWN, shown, evidence)


@check("prior_class_received", params={"drug_class": {"type": "string"}, "label": LABEL, **LINE_PARAMS},
       value_set_params=("drug_class",))
def prior_class_received(facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext) -> LeafResult:
    """A drug class among the prior lines. The lines fact is observed only when the medication and
    procedure history was retrieved in full and documents therapy; such a history is taken as
    authoritative about what was given, exactly as for the line count (not met when even the maximum
    falls short) and the exclusions (met when the full history shows none). So a documented history
    without the class contradicts the criterion: not met, citing the lines reviewed. With no therapy
    documented at all, or an incomplete retrieval, the fact is unknown and so is this criterion."""
    fact = facts.lines_of_therapy(as_of, params["consolidation_in_line"])
    if isinstance(fact, Unknown):
        return unknown_fact(fact, "Prior lines of therapy")
    drug_class, label = params["drug_class"], params["label"]
    if drug_class in fact.value.classes_received:
        in_class = value_set(drug_class)
        drugs = sorted({i for line in fact.value.lines if drug_class in line.classes for i in line.ingredients
                        if in_class.match_text(i) is not None})
        return LeafResult(Status.MET, f"Prior {label}: {', '.join(drugs) or 'recorded'}",
                          _line_evidence(fact.value, drug_class))
    return LeafResult(Status.NOT_MET, f"No {label} in the {_count_lines(fact.value)} on the record "
                      "(medication history retrieved in full)", _line_evidence(fact.value))


def _count_lines(lines: LinesOfTherapy) -> str:
    return "1 prior line" if len(lines.lines) == 1 else f"{len(lines.lines)} prior lines"


def _exposure_evidence(exposures: tuple[Exposure, ...]) -> tuple[Evidence, ...]:
    return tuple(Evidence(e.reference, "medication", e.ingredient, date=e.start.isoformat() if e.start else None)
                 for e in exposures)


def _listed(exposures: tuple[Exposure, ...]) -> str:
    return "; ".join(f"{e.ingredient} ({e.start.isoformat() if e.start else 'date not recorded'})" for e in exposures)


@check("no_prior_exposure", params={"value_sets": VALUE_SET_LIST, "label": LABEL, "examples": EXAMPLES},
       optional=("examples",), value_set_params=("value_sets",))
def no_prior_exposure(facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext) -> LeafResult:
    """Prior therapy ("has not previously received"): not met on evidence the therapy was received (an administration, a
    statement of use, a completed dispense, a procedure, a history code); unknown when the record only
    suggests it (an order without an administration, a mention in text) or was not retrieved in full;
    met only when the whole history was retrieved and shows none. The order being signed is never its
    own prior therapy (see ``fhir_mappings.therapy``)."""
    fact = facts.prior_exposures(tuple(params["value_sets"]), as_of)
    label = params["label"]
    if isinstance(fact, Unknown):
        return unknown_fact(fact, f"Prior {label}")
    if fact.value:
        return LeafResult(Status.NOT_MET, f"Prior {label}: {_listed(fact.value)}",
                          fact.evidence or _exposure_evidence(fact.value))
    examples = params.get("examples")
    named = f" (e.g. {', '.join(examples)})" if examples else ""
    return LeafResult(Status.MET, f"No prior {label}{named} on the record (history retrieved in full)", fact.evidence)


@check("no_concurrent_order", params={"value_sets": VALUE_SET_LIST, "label": LABEL, "examples": EXAMPLES},
       optional=("examples",), value_set_params=("value_sets",))
def no_concurrent_order(facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext) -> LeafResult:
    """No other live order (draft, active, on-hold; MedicationRequest or ServiceRequest) for a product of
    the value sets; the order itself, in any copy, does not count. Another named product contradicts the
    criterion, as does a trial product; a duplicate order for the same product or one naming no product is
    unknown (the fact)."""
    fact = facts.concurrent_requests(tuple(params["value_sets"]), ctx.order, ctx.draft_orders)
    label = params["label"]
    if isinstance(fact, Unknown):
        return unknown_fact(fact, f"Concurrent {label}")
    own = facts.ordered_product(ctx.order).reference
    others = tuple(e for e in fact.value if e.reference != own)
    if others:
        return LeafResult(Status.NOT_MET, f"Concurrent {label}: {_listed(others)}", _exposure_evidence(others))
    return LeafResult(Status.MET, f"No other {label} ordered or active", fact.evidence)
