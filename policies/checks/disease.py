"""Checks about the disease: diagnosis, measurable disease (labs in a window), progressive disease."""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from fhir_mappings.facts import Evidence, FactSource, Measurement, Observed, Unknown
from policies.checks.registry import DAYS, NON_NEGATIVE, LeafResult, OrderContext, check, unknown_fact
from policies.decision import Status

# Unit conversions (g/L -> g/dL, ...) happen in fhir_mappings; this tolerance only absorbs the binary
# floating-point error of such a conversion (5 g/L / 10 must count as 0.5 g/dL).
TOLERANCE = 1e-9


def _in_window(effective: date, as_of: date, within_days: int) -> bool:
    """Within the last ``within_days`` days up to and including ``as_of`` (30 days back counts)."""
    return 0 <= (as_of - effective).days <= within_days


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


def _measurement_at_least(
    fact, what: str, unit: str, minimum: float, as_of: date, within_days: int
) -> LeafResult:
    if isinstance(fact, Unknown):
        return unknown_fact(fact, what)
    m: Measurement = fact.value
    evidence = fact.evidence or (
        Evidence(m.reference, "valueQuantity", f"{m.raw_value if m.raw_value is not None else m.value:g}",
                 m.raw_unit or unit, m.effective.isoformat()),
    )
    when = m.effective.isoformat()
    if not _in_window(m.effective, as_of, within_days):
        return LeafResult(
            Status.UNKNOWN, f"{what} of {when} is not within the {within_days} days before {as_of}", evidence
        )
    shown = f"{what} {m.value:g} {unit} on {when}"
    if m.value + TOLERANCE >= minimum:
        return LeafResult(Status.MET, f"{shown} (>= {minimum:g} {unit})", evidence)
    return LeafResult(Status.NOT_MET, f"{shown}, below {minimum:g} {unit}", evidence)


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
    days = params["within_days"]
    minimum = params["min_mg_dl"]
    fact = facts.free_light_chains(as_of, days)
    if isinstance(fact, Unknown):
        return unknown_fact(fact, "Serum free light chains")
    flc = fact.value
    when = flc.effective.isoformat()
    if not _in_window(flc.effective, as_of, days):
        return LeafResult(
            Status.UNKNOWN, f"Free light chains of {when} are not within the {days} days before {as_of}", fact.evidence
        )
    ratio = f"ratio {flc.ratio:g}" if flc.ratio is not None else "ratio"
    if flc.ratio_abnormal is None:
        return LeafResult(Status.UNKNOWN, f"Serum FLC {ratio} on {when} could not be judged normal or abnormal",
                          fact.evidence)
    if flc.ratio_abnormal is False:
        return LeafResult(Status.NOT_MET, f"Serum FLC {ratio} on {when} is normal ({flc.ratio_abnormal_basis})",
                          fact.evidence)
    if flc.involved_mg_dl is None:
        return LeafResult(Status.UNKNOWN, f"Abnormal FLC {ratio} on {when} but no involved FLC level", fact.evidence)
    shown = f"Involved FLC ({flc.involved}) {flc.involved_mg_dl:g} mg/dL with abnormal {ratio} on {when}"
    if flc.involved_mg_dl + TOLERANCE >= minimum:
        return LeafResult(Status.MET, f"{shown} (>= {minimum:g} mg/dL)", fact.evidence)
    return LeafResult(Status.NOT_MET, f"{shown}, below {minimum:g} mg/dL", fact.evidence)


@check("progressive_disease_after_last_regimen", params={"within_days": DAYS})
def progressive_disease_after_last_regimen(
    facts: FactSource, params: Mapping[str, Any], as_of: date, ctx: OrderContext
) -> LeafResult:
    """IMWG progressive disease assessed within N days following the last dose of the last regimen.

    Not met when the most recent assessment on the record, made after that last dose, documents that
    the disease is not progressing (stable, improved): the record then contradicts progression. A
    progression outside the window does not contradict the criterion (another assessment may exist that
    the record does not hold), so it is unknown."""
    days = params["within_days"]
    pd = facts.progressive_disease(as_of)
    last = facts.last_regimen_last_dose(as_of)
    if isinstance(pd, Observed) and isinstance(last, Observed):
        gap = (pd.value.assessed - last.value).days
        shown = f"Progressive disease ({pd.value.basis}) on {pd.value.assessed}, last dose {last.value}"
        if 0 <= gap <= days and pd.value.assessed <= as_of:
            return LeafResult(Status.MET, f"{shown}: {gap} days after the last dose", pd.evidence + last.evidence)
    latest = facts.latest_disease_assessment(as_of)
    if (isinstance(latest, Observed) and not latest.value.progressive and isinstance(last, Observed)
            and latest.value.assessed > last.value):
        return LeafResult(
            Status.NOT_MET,
            f"No progression: {latest.value.basis} on {latest.value.assessed}, after the last dose on {last.value}",
            latest.evidence + last.evidence,
        )
    if isinstance(pd, Unknown):
        return unknown_fact(pd, "Progressive disease")
    if isinstance(last, Unknown):
        return LeafResult(
            Status.UNKNOWN,
            f"Progressive disease on {pd.value.assessed}, but the last dose of the last regimen is not shown "
            f"({last.reason})",
            pd.evidence + last.evidence,
            last.retrieval_failed,
        )
    shown = f"Progressive disease ({pd.value.basis}) on {pd.value.assessed}, last dose {last.value}"
    return LeafResult(Status.UNKNOWN, f"{shown}: not within {days} days following the last dose",
                      pd.evidence + last.evidence)

