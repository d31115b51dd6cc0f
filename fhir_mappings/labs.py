"""Myeloma disease-burden labs: serum and 24-hour urine M-protein, serum free light chains.

Selection happens on the raw JSON (code in the analyte's value set, date), and only the results a
fact reports are validated with ``fhir.resources``; a record with thousands of unrelated Observations
costs a code lookup each, not a model build.

Which results count (lab results as labs report them):

- Only final results: ``PatientRecord`` admits an Observation only when its status is final, amended or
  corrected (the one place that rule lives), so a preliminary, registered, cancelled or
  entered-in-error result is not in the record at all.
- A result with no value (``dataAbsentReason``, no ``value[x]``, a ``valueQuantity`` without a number)
  is not a result: it is skipped here, so it never hides an earlier valid result in the window. A value
  that is there but cannot be read (an unknown unit, a text value) is a result that may contradict the
  earlier ones: the fact is unknown, with the raw value shown.
- A bound (``valueQuantity.comparator``: "<0.1 g/dL", ">100") is kept as a bound: the checks decide
  what it can and cannot show (``policies.checks.disease``); a ratio computed from bounded chains is a
  bound too, or no ratio when the bounds pull opposite ways.
- The latest valid result in the window is the one reported; the other valid results of the window
  come with it (``others_in_window``), so a check can see when two results in the window disagree.
- A result dated only to the month or year (``effectiveDateTime`` "2026-11") is judged on its whole span
  (``parsing.within``): inside the window when every day of it is, outside when none is. One that
  straddles the window's start may or may not be in the window: when no result is wholly inside, or when
  it could be later than the reported one (it could be the latest valid result and contradict it), the
  fact is unknown, citing it; otherwise it comes along in ``others_in_window`` (it may be in the window,
  and a check weighs it like any other result there). A partial date is never dropped and never counted
  as inside a window it only may be in.

Free light chains are an assay of three results (kappa, lambda, ratio) that are only meaningful
together: they are paired by collection date and, when the lab names it, by the same specimen. The
assay reported is the latest *complete* one in the window (kappa, lambda and a ratio all read), so a
later draw with one chain missing (not resulted, preliminary, no value) does not hide an earlier
complete draw; the later partial draws come along in ``others_in_window``. Draws are placed in the window
by their whole date span, as single results are. Only when no draw in the
window is complete is the latest partial one reported. A later draw whose value could not be read
makes the fact unknown. The ratio is judged abnormal by the lab's ``interpretation`` first, then its
``referenceRange``, then the IMWG/Freelite default 0.26-1.65; the involved chain is kappa when the
ratio is high, lambda when low. When no ratio was reported but both chains were, the ratio is computed
from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import TypeVar

from fhir_mappings.code_index import coded_in
from fhir_mappings.facts import (
    Evidence,
    Fact,
    FreeLightChains,
    Measurement,
    Observed,
    Unknown,
)
from fhir_mappings.parsing import DateSpan, effective_span, within
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.terminology import codings_of
from fhir_mappings.units import (
    FLC_RATIO,
    FREE_LIGHT_CHAIN,
    SERUM_M_PROTEIN,
    URINE_M_PROTEIN_24H,
    Analyte,
    UnitProblem,
    to_canonical,
)

# The value sets whose Observations (by ``code``) this module selects: the fallback query asks the EHR
# for the codes the lab modules declare here (``data_requirements.observation_codes``).
OBSERVATION_VALUE_SETS = ("serum-m-protein", "urine-m-protein-24h", "serum-free-kappa", "serum-free-lambda", "serum-flc-ratio")

DEFAULT_RATIO_RANGE = (0.26, 1.65)
DEFAULT_RATIO_BASIS = "default 0.26-1.65"
INTERPRETATION_HIGH = frozenset({"H", "HH", "HU", ">"})
INTERPRETATION_LOW = frozenset({"L", "LL", "LU", "<"})
INTERPRETATION_ABNORMAL = frozenset({"A", "AA"})
INTERPRETATION_NORMAL = frozenset({"N"})


@dataclass(frozen=True)
class LabResult:
    """One Observation selected by code, with the day (or the span of days, for a partial date) it was
    collected; ``day`` is the latest day it may have been."""

    resource: dict
    reference: str
    span: DateSpan
    when: str  # the raw effective value, for ordering results of the same day

    @property
    def day(self) -> date:
        return self.span.latest


def lab_results(record: PatientRecord, value_set_id: str) -> list[LabResult]:
    """Observations whose code is in the value set and that carry a value and a date (a partial date is
    kept with its span: module docstring), oldest first by latest possible day. Selected once per record and value set (the engine asks for the same labs many times per hook)."""
    return list(record.memo(("labs.results", value_set_id), lambda: tuple(_select(record, value_set_id))))


def has_value(obs: dict) -> bool:
    """Whether an Observation carries a value: no ``dataAbsentReason``, and a ``value[x]`` (a
    ``valueQuantity`` with its number)."""
    if obs.get("dataAbsentReason") is not None:
        return False
    quantity = obs.get("valueQuantity")
    if isinstance(quantity, dict):
        return quantity.get("value") is not None
    return any(key.startswith("value") and obs[key] is not None for key in obs)


def _select(record: PatientRecord, value_set_id: str) -> list[LabResult]:
    out = []
    for obs, _ in coded_in(record, "Observation", "code", value_set_id):
        if not has_value(obs):
            continue  # not a result: it must not hide an earlier one
        span = effective_span(obs)
        if span is None:
            continue
        when = obs.get("effectiveDateTime") or obs.get("effectiveInstant") or span.latest.isoformat()
        out.append(LabResult(obs, record.reference_of(obs), span, str(when)))
    out.sort(key=lambda r: (r.day, r.when))
    return out


def measure(record: PatientRecord, result: LabResult, analyte: Analyte) -> Measurement | Unknown:
    """The result in the analyte's canonical unit, or why it cannot be used (malformed, no value,
    unit missing or not convertible -- with the raw value as evidence)."""
    if not record.well_formed(result.resource):
        return Unknown(f"{analyte.name}: result does not validate", evidence=(Evidence(result.reference, "Observation"),))
    quantity = result.resource.get("valueQuantity")
    try:
        converted = to_canonical(quantity, analyte)
    except UnitProblem as problem:
        raw = None if problem.raw_value is None else f"{problem.raw_value:g}"
        shown = raw if raw is not None else _text_value(result.resource)
        evidence = Evidence(result.reference, "Observation.value[x]", shown, problem.raw_unit, result.day.isoformat())
        return Unknown(problem.reason, evidence=(evidence,))
    return Measurement(
        value=converted.value,
        unit=converted.unit,
        effective=result.day,
        effective_earliest=None if result.span.exact else result.span.earliest,
        reference=result.reference,
        raw_value=converted.raw_value,
        raw_unit=converted.raw_unit,
        comparator=converted.comparator,
    )


def _text_value(obs: dict) -> str | None:
    if isinstance(obs.get("valueString"), str):
        return obs["valueString"]
    concept = obs.get("valueCodeableConcept")
    return concept.get("text") if isinstance(concept, dict) and isinstance(concept.get("text"), str) else None


def bounds(m: Measurement) -> tuple[float, float | None]:
    """(lowest, highest) the true value can be: a value is both; "<x" lies between 0 (these labs are
    amounts) and x; ">x" has no known highest (None)."""
    if m.comparator in ("<", "<="):
        return 0.0, m.value
    if m.comparator in (">", ">="):
        return m.value, None
    return m.value, m.value


def measurement_evidence(m: Measurement, element: str = "Observation.valueQuantity") -> Evidence:
    value = f"{m.comparator or ''}{m.raw_value:g}" if m.raw_value is not None else None
    return Evidence(m.reference, element, value, m.raw_unit, m.effective_span.isoformat())


T = TypeVar("T")


def _placed(items: list[T], span_of: Callable[[T], DateSpan], as_of: date, within_days: int) -> tuple[list[T], list[T]]:
    """(wholly inside the window, straddling its start) of ``items``, in their order; those wholly
    outside are left out (``parsing.within``)."""
    inside, straddling = [], []
    for item in items:
        where = within(span_of(item), as_of, within_days)
        if where is True:
            inside.append(item)
        elif where is None:
            straddling.append(item)
    return inside, straddling


def _undecided(straddling: list[T], span_of: Callable[[T], DateSpan], chosen_day: date | None) -> T | None:
    """The straddling item that stops the chosen one from being reported (module docstring): the latest
    that could be later than it, or any one when nothing was chosen; None when there is none."""
    could_be_later = [s for s in straddling if chosen_day is None or span_of(s).latest > chosen_day]
    return could_be_later[-1] if could_be_later else None


def _window_unknown(what: str, span: DateSpan, evidence: tuple[Evidence, ...], as_of: date, within_days: int,
                    retrieval_failed: bool) -> Unknown:
    return Unknown(
        f"{what} dated only {span.isoformat()} may or may not be within the {within_days} days before "
        f"{as_of.isoformat()}, and it could be the latest result",
        retrieval_failed,
        evidence,
    )


def retrieval_unknown(record: PatientRecord, what: str) -> Unknown | None:
    """Unknown(retrieval_failed) when Observations were not retrieved in full, else None."""
    outcome = record.retrieval("Observation")
    if outcome.usable_in_full:
        return None
    return Unknown(f"{what}: Observations not fully retrieved ({outcome.reason or outcome.state.value})", True)


def _latest_measurement(
    record: PatientRecord, value_set_id: str, analyte: Analyte, as_of: date, within_days: int
) -> Fact[Measurement]:
    """The latest valid result in the window with the other valid ones (module docstring); malformed
    results are reported in ``record.issues`` and skipped."""
    incomplete = retrieval_unknown(record, analyte.name)
    inside, straddling = _placed(lab_results(record, value_set_id), lambda r: r.span, as_of, within_days)
    if not inside and not straddling:
        return incomplete or Unknown(f"no {analyte.name} result in the {within_days} days before {as_of.isoformat()}")
    valid = [r for r in inside if record.well_formed(r.resource)]
    doubtful = [r for r in straddling if record.well_formed(r.resource)]
    blocking = _undecided(doubtful, lambda r: r.span, valid[-1].day if valid else None)
    if blocking is not None:
        evidence = Evidence(blocking.reference, "Observation.effective[x]", date=blocking.when)
        return _window_unknown(f"{analyte.name} result", blocking.span, (evidence,), as_of, within_days,
                               incomplete is not None)
    if not valid:
        return incomplete or Unknown(f"no valid {analyte.name} result in the {within_days} days before {as_of.isoformat()}")
    latest = measure(record, valid[-1], analyte)
    if isinstance(latest, Unknown):
        return latest if incomplete is None else Unknown(incomplete.reason, True, latest.evidence)
    earlier = sorted(valid[:-1] + doubtful, key=lambda r: (r.day, r.when))
    measured = (measure(record, r, analyte) for r in reversed(earlier))
    latest = replace(latest, others_in_window=tuple(m for m in measured if isinstance(m, Measurement)))
    if incomplete is not None:  # a later result may be among those not retrieved
        return Unknown(incomplete.reason, True, (measurement_evidence(latest),))
    return Observed(latest, (measurement_evidence(latest),))


def serum_m_protein(record: PatientRecord, as_of: date, within_days: int) -> Fact[Measurement]:
    """The latest serum M-protein (g/dL) within ``within_days`` before ``as_of``."""
    return _latest_measurement(record, "serum-m-protein", SERUM_M_PROTEIN, as_of, within_days)


def urine_m_protein_24h(record: PatientRecord, as_of: date, within_days: int) -> Fact[Measurement]:
    """The latest 24-hour urine M-protein (mg/24 h) within the window; a spot concentration is unknown."""
    return _latest_measurement(record, "urine-m-protein-24h", URINE_M_PROTEIN_24H, as_of, within_days)


# ------------------------------------------------------------------------------ free light chains


@dataclass(frozen=True)
class FlcAssay:
    """Kappa, lambda and ratio results of one collection (any may be missing), dated as they were
    (a partial date is a span; ``day`` is its latest day)."""

    span: DateSpan
    kappa: LabResult | None
    lambda_: LabResult | None
    ratio: LabResult | None

    @property
    def day(self) -> date:
        return self.span.latest


def _specimen(result: LabResult) -> str | None:
    specimen = result.resource.get("specimen")
    ref = specimen.get("reference") if isinstance(specimen, dict) else None
    return ref if isinstance(ref, str) else None


def flc_assays(record: PatientRecord) -> list[FlcAssay]:
    """FLC results grouped per collection (date as recorded, then specimen when one is named), oldest
    first. A result with no specimen joins the date's only specimen group, if there is exactly one. A
    partial date pairs only with the same partial date (a result of "2026-11" is not known to be of the
    draw of 2026-11-30). Linear in the number of results: the specimen groups of each date are indexed
    once."""
    groups: dict[tuple[DateSpan, str | None], dict[str, LabResult]] = {}
    for part, vs_id in (("kappa", "serum-free-kappa"), ("lambda", "serum-free-lambda"), ("ratio", "serum-flc-ratio")):
        for result in lab_results(record, vs_id):
            groups.setdefault((result.span, _specimen(result)), {})[part] = result  # latest of the day wins
    named_by_day: dict[DateSpan, list[tuple[DateSpan, str | None]]] = {}
    for key in groups:
        if key[1] is not None:
            named_by_day.setdefault(key[0], []).append(key)
    for key in [k for k in groups if k[1] is None]:
        named = named_by_day.get(key[0], ())
        if len(named) == 1:
            target = groups[named[0]]
            for part, result in groups.pop(key).items():
                target.setdefault(part, result)
    return [
        FlcAssay(span, parts.get("kappa"), parts.get("lambda"), parts.get("ratio"))
        for (span, _), parts in sorted(groups.items(), key=lambda item: (item[0][0].latest, item[0][0].earliest,
                                                                          item[0][1] or ""))
    ]


def _interpretation_direction(obs: dict) -> str | None:
    """``high``/``low``/``abnormal``/``normal`` from Observation.interpretation codes, else None."""
    for concept in obs.get("interpretation") or ():
        for coding in codings_of(concept):
            code = coding.get("code")
            if code in INTERPRETATION_HIGH:
                return "high"
            if code in INTERPRETATION_LOW:
                return "low"
            if code in INTERPRETATION_ABNORMAL:
                return "abnormal"
            if code in INTERPRETATION_NORMAL:
                return "normal"
    return None


def _reference_range(obs: dict) -> tuple[float, float] | None:
    for rng in obs.get("referenceRange") or ():
        if not isinstance(rng, dict):
            continue
        low, high = (rng.get(k, {}).get("value") if isinstance(rng.get(k), dict) else None for k in ("low", "high"))
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and not isinstance(low, bool) and low < high:
            return float(low), float(high)
    return None


def _side_of_range(ratio: float, comparator: str | None, low: float, high: float) -> str | None:
    """``high``/``low`` when the ratio (a value, or a bound) is certainly beyond the range, else None."""
    if comparator is None:
        return "high" if ratio > high else "low" if ratio < low else None
    if comparator == ">" and ratio >= high or comparator == ">=" and ratio > high:
        return "high"
    if comparator == "<" and ratio <= low or comparator == "<=" and ratio < low:
        return "low"
    return None


def judge_ratio(ratio: float, obs: dict | None, comparator: str | None = None) -> tuple[bool | None, str | None, str]:
    """(abnormal, direction high/low/None, basis) for a kappa/lambda ratio. A bound that does not reach
    beyond the range (">1.2") cannot show a normal ratio either: abnormal is None (not judged) unless
    the lab's interpretation says."""
    rng = _reference_range(obs) if obs else None
    low, high = rng or DEFAULT_RATIO_RANGE
    by_value = _side_of_range(ratio, comparator, low, high)
    verdict = _interpretation_direction(obs) if obs else None
    if verdict == "normal":
        return False, None, "interpretation"
    if verdict in ("high", "low"):
        return True, verdict, "interpretation"
    if verdict == "abnormal":
        return True, by_value, "interpretation"
    basis = "referenceRange" if rng else DEFAULT_RATIO_BASIS
    if by_value is None and comparator is not None:
        return None, None, basis
    return by_value is not None, by_value, basis


_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _quotient_comparator(numerator: str | None, denominator: str | None) -> tuple[bool, str | None]:
    """(bounded, comparator) of a quotient of two results that may be bounds: kappa 25 over lambda
    "<0.15" is a ratio ">166.7"; two bounds that pull opposite ways leave the quotient unbounded."""
    sides = [c for c in (numerator, _FLIPPED.get(denominator or "")) if c]
    if not sides:
        return True, None
    if len({c[0] for c in sides}) > 1:
        return False, None
    strict = any(len(c) == 1 for c in sides)
    return True, sides[0][0] + ("" if strict else "=")


@dataclass(frozen=True)
class FlcReading:
    """One assay read: values in mg/dL, ratio judged, and what could not be used."""

    assay: FlcAssay
    value: FreeLightChains | None
    evidence: tuple[Evidence, ...]
    problems: tuple[Unknown, ...]
    kappa: Measurement | None = None
    lambda_: Measurement | None = None

    @property
    def complete(self) -> bool:
        """Kappa, lambda and a ratio (reported or computed) all read."""
        v = self.value
        return v is not None and None not in (v.kappa_mg_dl, v.lambda_mg_dl, v.ratio)

    def dflc(self, involved: str) -> tuple[float | None, float | None] | None:
        """(lowest, highest) involved minus uninvolved FLC (mg/dL) can be, taking ``involved``
        (kappa/lambda) as the clone's chain (see ``bounds``); None unless both chains were measured."""
        involved_m, uninvolved_m = (self.kappa, self.lambda_) if involved == "kappa" else (self.lambda_, self.kappa)
        if involved_m is None or uninvolved_m is None:
            return None
        (inv_low, inv_high), (uninv_low, uninv_high) = bounds(involved_m), bounds(uninvolved_m)
        low = round(inv_low - uninv_high, 6) if uninv_high is not None else None
        high = round(inv_high - uninv_low, 6) if inv_high is not None else None
        return low, high


def read_assay(record: PatientRecord, assay: FlcAssay) -> FlcReading:
    values: dict[str, Measurement | None] = {}
    evidence: list[Evidence] = []
    problems: list[Unknown] = []
    for part, result, analyte in (
        ("kappa", assay.kappa, FREE_LIGHT_CHAIN),
        ("lambda", assay.lambda_, FREE_LIGHT_CHAIN),
        ("ratio", assay.ratio, FLC_RATIO),
    ):
        got = measure(record, result, analyte) if result is not None else None
        if isinstance(got, Unknown):
            problems.append(got)
            evidence.extend(got.evidence)
            got = None
        elif got is not None:
            evidence.append(measurement_evidence(got))
        values[part] = got
    kappa, lam, ratio_m = values["kappa"], values["lambda"], values["ratio"]
    ratio, comparator, abnormal, direction, basis = None, None, None, None, None
    if ratio_m is not None and assay.ratio is not None:  # a ratio is measured only for an assay's ratio result
        ratio, comparator = ratio_m.value, ratio_m.comparator
        abnormal, direction, basis = judge_ratio(ratio, assay.ratio.resource, comparator)
    elif kappa is not None and lam is not None and lam.value > 0:
        bounded, comparator = _quotient_comparator(kappa.comparator, lam.comparator)
        if bounded:
            ratio = round(kappa.value / lam.value, 4)
            abnormal, direction, basis = judge_ratio(ratio, None, comparator)
            basis = f"{basis} (ratio computed from kappa and lambda)"
    if ratio is None and kappa is None and lam is None:
        return FlcReading(assay, None, tuple(evidence), tuple(problems))
    involved = {"high": "kappa", "low": "lambda"}.get(direction or "")
    involved_value = {"kappa": kappa, "lambda": lam}.get(involved or "")
    value = FreeLightChains(
        effective=assay.day,
        effective_earliest=None if assay.span.exact else assay.span.earliest,
        ratio=ratio,
        ratio_abnormal=abnormal,
        ratio_abnormal_basis=basis,
        involved=involved,
        involved_mg_dl=involved_value.value if involved_value else None,
        kappa_mg_dl=kappa.value if kappa else None,
        lambda_mg_dl=lam.value if lam else None,
        ratio_comparator=comparator,
        involved_comparator=involved_value.comparator if involved_value else None,
        references=tuple(m.reference for m in (kappa, lam, ratio_m) if m is not None),
    )
    return FlcReading(assay, value, tuple(evidence), tuple(problems), kappa, lam)


def free_light_chains(record: PatientRecord, as_of: date, within_days: int) -> Fact[FreeLightChains]:
    """The latest complete FLC assay within the window (else the latest partial one), ratio judged and
    involved chain named, with the window's other assays (module docstring)."""
    incomplete = retrieval_unknown(record, "serum free light chains")
    inside, straddling = _placed(flc_assays(record), lambda a: a.span, as_of, within_days)
    readings = [read_assay(record, a) for a in inside]
    usable = [r for r in readings if r.value is not None]
    chosen = next((r for r in reversed(usable) if r.complete), usable[-1] if usable else None)
    doubtful = [read_assay(record, a) for a in straddling]
    blocking = _undecided(doubtful, lambda r: r.assay.span, chosen.assay.day if chosen else None)
    if blocking is not None:
        parts = (blocking.assay.kappa, blocking.assay.lambda_, blocking.assay.ratio)
        evidence = tuple(Evidence(p.reference, "Observation.effective[x]", date=p.when) for p in parts if p is not None)
        return _window_unknown("Serum free light chain assay", blocking.assay.span, evidence, as_of, within_days,
                               incomplete is not None)
    after = [r for r in readings if chosen is None or r.assay.day > chosen.assay.day]
    unreadable = next((r for r in reversed(after) if r.problems), None)
    if unreadable is not None:  # a later value that could not be read may contradict the chosen assay
        return Unknown(unreadable.problems[0].reason, incomplete is not None, unreadable.evidence)
    if chosen is None:
        return incomplete or Unknown(f"no serum free light chain assay in the {within_days} days before {as_of.isoformat()}")
    earlier = sorted([r for r in usable if r is not chosen] + [r for r in doubtful if r.value is not None],
                     key=lambda r: r.assay.day)
    others = tuple(r.value for r in reversed(earlier) if r.value is not None)  # all have one
    if incomplete is not None:
        return Unknown(incomplete.reason, True, chosen.evidence)
    assert chosen.value is not None, "chosen among the usable readings"
    return Observed(replace(chosen.value, others_in_window=others), chosen.evidence)
