"""Checks about the disease: diagnosis, measurable disease (labs in a window), progressive disease.

Measurable disease ("assessed within the last 30 days: serum M-protein >= 0.5 g/dL", ...) is judged on
the latest valid final result in the window (the facts say which: ``fhir_mappings.labs``):

- A value meets the threshold or contradicts it. A lab's bound decides only what it can: a result
  reported as below a value ("<0.1 g/dL", "<=0.3") cannot meet a threshold at or above that value and
  contradicts it ("<0.1" is not ">= 0.5": not met; "<=0.5" might be exactly 0.5: unknown); a result
  reported as above a value (">500 mg/L") meets a threshold its bound clears; any other bound is unknown.
- Two valid results in the window that disagree: a careful reviewer reads the latest result as the
  disease now, and does not approve on a value the record has since contradicted. So the latest result
  meeting the threshold is met (an earlier lower value is the disease rising, as in relapse), but an
  earlier result meeting it while the latest does not ("0.6 g/dL, then 0.4 g/dL a week later") is
  unknown, not met and not not-met: the policy names one assessment in the window, the record holds two
  that disagree, and a reviewer must reconcile them. For FLC, the latest complete assay is the one
  judged; a later partial draw that contradicts it (a normal ratio) makes it unknown the same way.
- A result dated only to a month or year is a span of days: it is in the window only when every day of
  it is (``fhir_mappings.parsing.within``), and an earlier one that may be in the window is weighed
  with the others as if it were (it may be there and disagree).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from fhir_mappings.facts import DateSpan, Evidence, FactSource, FreeLightChains, Measurement, Observed, Unknown
from fhir_mappings.labs import measurement_evidence
from fhir_mappings.parsing import follows_within, on_or_before, within
from policies.checks.registry import DAYS, NON_NEGATIVE, LeafResult, OrderContext, check, unknown_fact
from policies.decision import Status

# Unit conversions (g/L -> g/dL, ...) happen in fhir_mappings; this tolerance only absorbs the binary
# floating-point error of such a conversion (5 g/L / 10 must count as 0.5 g/dL).
TOLERANCE = 1e-9


def _indications(finding) -> str:
    return ", ".join(c.code.display or c.code.code or c.value_set for c in finding.other_indications)


def _indication_evidence(finding) -> tuple[Evidence, ...]:
    return tuple(Evidence(c.reference, "code", c.code.code or c.code.display) for c in finding.other_indications)


@check("myeloma_relapsed_refractory")
def myeloma_relapsed_refractory(
    facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext
) -> LeafResult:
    fact = facts.myeloma_diagnosis(as_of, ctx.order)
    if isinstance(fact, Unknown):
        return unknown_fact(fact, "Multiple myeloma diagnosis")
    finding = fact.value
    if not finding.myeloma:
        if finding.other_indications:
            return LeafResult(
                Status.NOT_MET,
                f"The order's indication is {_indications(finding)}, not multiple myeloma",
                _indication_evidence(finding),
            )
        return LeafResult(Status.UNKNOWN, "No multiple myeloma diagnosis on the record", fact.evidence)
    if finding.relapsed_refractory is True:
        return LeafResult(Status.MET, f"Relapsed or refractory multiple myeloma: {finding.basis}", fact.evidence)
    if finding.relapsed_refractory is False:
        return LeafResult(
            Status.NOT_MET,
            f"Record shows multiple myeloma in remission only{': ' + finding.basis if finding.basis else ''}",
            fact.evidence,
        )
    return LeafResult(
        Status.UNKNOWN, "Multiple myeloma is recorded but relapse or refractoriness is not shown", fact.evidence
    )


@check("indication_is_multiple_myeloma")
def indication_is_multiple_myeloma(
    facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext
) -> LeafResult:
    """Section III.A: the request is for the FDA-approved indication (multiple myeloma). Not met when
    the order names another indication and the record shows no myeloma; the engine then refers (I.B)."""
    fact = facts.myeloma_diagnosis(as_of, ctx.order)
    if isinstance(fact, Unknown):
        return unknown_fact(fact, "Indication")
    finding = fact.value
    if finding.myeloma:
        return LeafResult(Status.MET, "Indication is multiple myeloma (FDA-approved indication)", fact.evidence)
    if finding.other_indications:
        return LeafResult(
            Status.NOT_MET,
            f"Requested for {_indications(finding)}, which this policy does not address",
            _indication_evidence(finding),
        )
    return LeafResult(Status.UNKNOWN, "The indication (multiple myeloma) is not shown on the record")


def _at_least(value: float, comparator: str | None, minimum: float) -> Status:
    """Whether a result, a value or a lab's bound (module docstring), shows ">= minimum"."""
    if comparator in (None, ">", ">=") and value + TOLERANCE >= minimum:
        return Status.MET
    if comparator is None or (comparator == "<" and value <= minimum + TOLERANCE) or (
        comparator == "<=" and value + TOLERANCE < minimum
    ):
        return Status.NOT_MET
    return Status.UNKNOWN


def _weighed(judged: LeafResult, effective: DateSpan, others: list[tuple[LeafResult, DateSpan]]) -> LeafResult:
    """The judged (latest) result, unless another result of the window disagrees with it (module
    docstring): met with a result possibly of the same day or later not met (two draws of one day have
    no order a reviewer could rely on), or not met with another result met, is unknown."""
    if judged.status is Status.MET:
        against = [o for o, span in others if span.latest >= effective.earliest and o.status is Status.NOT_MET]
    elif judged.status is Status.NOT_MET:
        against = [o for o, _ in others if o.status is Status.MET]
    else:
        return judged
    if not against:
        return judged
    other = against[0]
    return LeafResult(
        Status.UNKNOWN,
        f"Results in the window disagree: {judged.reason}; but {other.reason}",
        judged.evidence + other.evidence,
    )


def _threshold_result(status: Status, shown: str, minimum: float, unit: str, evidence) -> LeafResult:
    if status is Status.MET:
        return LeafResult(status, f"{shown} (>= {minimum:g} {unit})", evidence)
    if status is Status.NOT_MET:
        return LeafResult(status, f"{shown}, below {minimum:g} {unit}", evidence)
    return LeafResult(status, f"{shown}: the lab's bound does not show whether it is >= {minimum:g} {unit}", evidence)


def _judged_in_window(fact, what: str, as_of: date, within_days: int, judge) -> LeafResult:
    """``judge`` (a result -> LeafResult) applied to the fact's result, weighed against the window's
    other results (``others_in_window``); a result outside the window is unknown."""
    if isinstance(fact, Unknown):
        return unknown_fact(fact, what)
    result = fact.value
    judged = judge(result)
    evidence = fact.evidence or judged.evidence
    placed = within(result.effective_span, as_of, within_days)
    if placed is not True:
        return LeafResult(
            Status.UNKNOWN,
            f"{what} of {result.effective_span.isoformat()} is {'not' if placed is False else 'not shown to be'} "
            f"within the {within_days} days before {as_of}",
            evidence,
        )
    others = [(judge(o), o.effective_span) for o in result.others_in_window
              if within(o.effective_span, as_of, within_days) is not False]  # possibly in the window: weighed
    return _weighed(LeafResult(judged.status, judged.reason, evidence), result.effective_span, others)


def _measurement_at_least(
    fact, what: str, unit: str, minimum: float, as_of: date, within_days: int
) -> LeafResult:
    def judge(m: Measurement) -> LeafResult:
        shown = f"{what} {m.comparator or ''}{m.value:g} {unit} on {m.effective_span.isoformat()}"
        status = _at_least(m.value, m.comparator, minimum)
        return _threshold_result(status, shown, minimum, unit, (measurement_evidence(m),))

    return _judged_in_window(fact, what, as_of, within_days, judge)


@check("serum_m_protein_at_least", params={"min_g_dl": NON_NEGATIVE, "within_days": DAYS})
def serum_m_protein_at_least(
    facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext
) -> LeafResult:
    days = params["within_days"]
    fact = facts.serum_m_protein(as_of, days)
    return _measurement_at_least(fact, "Serum M-protein", "g/dL", params["min_g_dl"], as_of, days)


@check("urine_m_protein_at_least", params={"min_mg_24h": NON_NEGATIVE, "within_days": DAYS})
def urine_m_protein_at_least(
    facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext
) -> LeafResult:
    days = params["within_days"]
    fact = facts.urine_m_protein_24h(as_of, days)
    return _measurement_at_least(fact, "Urine M-protein", "mg/24 h", params["min_mg_24h"], as_of, days)


@check("involved_flc_at_least", params={"min_mg_dl": NON_NEGATIVE, "within_days": DAYS})
def involved_flc_at_least(
    facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext
) -> LeafResult:
    """Involved FLC >= threshold *provided the ratio is abnormal*: a normal ratio is not met whatever
    the level; a ratio that could not be judged is unknown."""
    minimum = params["min_mg_dl"]
    days = params["within_days"]
    fact = facts.free_light_chains(as_of, days)
    return _judged_in_window(fact, "Serum free light chains", as_of, days, lambda flc: _flc_status(flc, minimum))


def _flc_status(flc: FreeLightChains, minimum: float) -> LeafResult:
    """One assay against "involved FLC >= minimum provided the ratio is abnormal"."""
    when = flc.effective_span.isoformat()
    evidence = tuple(Evidence(ref, "Observation.valueQuantity", date=when) for ref in flc.references)
    ratio = f"ratio {flc.ratio_comparator or ''}{flc.ratio:g}" if flc.ratio is not None else "ratio"
    if flc.ratio_abnormal is None:
        return LeafResult(Status.UNKNOWN, f"Serum FLC {ratio} on {when} could not be judged normal or abnormal", evidence)
    if flc.ratio_abnormal is False:
        return LeafResult(Status.NOT_MET, f"Serum FLC {ratio} on {when} is normal ({flc.ratio_abnormal_basis})", evidence)
    if flc.involved_mg_dl is None:
        return LeafResult(Status.UNKNOWN, f"Abnormal FLC {ratio} on {when} but no involved FLC level", evidence)
    level = f"{flc.involved_comparator or ''}{flc.involved_mg_dl:g}"
    shown = f"Involved FLC ({flc.involved}) {level} mg/dL with abnormal {ratio} on {when}"
    return _threshold_result(_at_least(flc.involved_mg_dl, flc.involved_comparator, minimum), shown, minimum, "mg/dL",
                             evidence)


def _days_after(later: DateSpan, earlier: DateSpan) -> str:
    shortest, longest = (later.earliest - earlier.latest).days, (later.latest - earlier.earliest).days
    return f"{shortest} days" if shortest == longest else f"{shortest} to {longest} days"


@check("progressive_disease_after_last_regimen", params={"within_days": DAYS})
def progressive_disease_after_last_regimen(
    facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext
) -> LeafResult:
    """IMWG progressive disease assessed within N days following the last dose of the last regimen.

    Either date may be partial (a month, a year): both are spans, and the window is judged on every day
    they allow (``fhir_mappings.parsing.follows_within``). A last dose in "2026-09" and a progression on
    2026-11-15 are 46 to 75 days apart: not shown within 60 days, so unknown, never met. Not met when the
    most recent assessment on the record, certainly made after that last dose (every day its date allows
    is after every day the last dose may have been), documents that the disease is not progressing
    (stable, improved): the record then contradicts progression. A progression outside the window, or
    only possibly inside it, does not contradict the criterion (another assessment may exist that the
    record does not hold), so it is unknown."""
    days = params["within_days"]
    pd = facts.progressive_disease(as_of)
    last = facts.last_regimen_last_dose(as_of)
    if isinstance(pd, Observed) and isinstance(last, Observed):
        assessed = pd.value.assessed_span
        if follows_within(assessed, last.value, days) is True and on_or_before(assessed, as_of) is True:
            shown = (f"Progressive disease ({pd.value.basis}) on {assessed.isoformat()}, "
                     f"last dose {last.value.isoformat()}")
            return LeafResult(Status.MET, f"{shown}: {_days_after(assessed, last.value)} after the last dose",
                              pd.evidence + last.evidence)
    latest = facts.latest_disease_assessment(as_of)
    if (isinstance(latest, Observed) and not latest.value.progressive and isinstance(last, Observed)
            and on_or_before(latest.value.assessed_span, last.value.latest) is False):
        return LeafResult(
            Status.NOT_MET,
            f"No progression: {latest.value.basis} on {latest.value.assessed_span.isoformat()}, after the last "
            f"dose on {last.value.isoformat()}",
            latest.evidence + last.evidence,
        )
    if isinstance(pd, Unknown):
        return unknown_fact(pd, "Progressive disease")
    assessed = pd.value.assessed_span
    if isinstance(last, Unknown):
        return LeafResult(
            Status.UNKNOWN,
            f"Progressive disease on {assessed.isoformat()}, but the last dose of the last regimen is not shown "
            f"({last.reason})",
            pd.evidence + last.evidence,
            last.retrieval_failed,
        )
    shown = f"Progressive disease ({pd.value.basis}) on {assessed.isoformat()}, last dose {last.value.isoformat()}"
    window = "not" if follows_within(assessed, last.value, days) is False else "not shown to be"
    return LeafResult(Status.UNKNOWN, f"{shown}: {window} within {days} days following the last dose",
                      pd.evidence + last.evidence)
