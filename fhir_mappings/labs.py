"""Myeloma disease-burden labs: serum and 24-hour urine M-protein, serum free light chains.

Selection happens on the raw JSON (code in the analyte's value set, date), and only the results a
fact reports are validated with ``fhir.resources``; a record with thousands of unrelated Observations
costs a code lookup each, not a model build.

Free light chains are an assay of three results (kappa, lambda, ratio) that are only meaningful
together: they are paired by collection date and, when the lab names it, by the same specimen. The
ratio is judged abnormal by the lab's ``interpretation`` first, then its ``referenceRange``, then the
IMWG/Freelite default 0.26-1.65; the involved chain is kappa when the ratio is high, lambda when low.
When no ratio was reported but both chains were, the ratio is computed from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from fhir_mappings.facts import Evidence, Fact, FreeLightChains, Measurement, Observed, Unknown
from fhir_mappings.parsing import DateSpan, effective_span
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.code_index import coded_in
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

DEFAULT_RATIO_RANGE = (0.26, 1.65)
DEFAULT_RATIO_BASIS = "default 0.26-1.65"
INTERPRETATION_HIGH = frozenset({"H", "HH", "HU", ">"})
INTERPRETATION_LOW = frozenset({"L", "LL", "LU", "<"})
INTERPRETATION_ABNORMAL = frozenset({"A", "AA"})
INTERPRETATION_NORMAL = frozenset({"N"})


@dataclass(frozen=True)
class LabResult:
    """One Observation selected by code, with the day it was collected."""

    resource: dict
    reference: str
    span: DateSpan
    when: str  # the raw effective value, for ordering results of the same day

    @property
    def day(self) -> date:
        return self.span.latest


def lab_results(record: PatientRecord, value_set_id: str) -> list[LabResult]:
    """Observations whose code is in the value set and whose date is known to the day, oldest first.
    A result dated only to the month or year cannot be placed in a lookback window or a time series.
    Selected once per record and value set (the engine asks for the same labs many times per hook)."""
    return list(record.memo(("labs.results", value_set_id), lambda: tuple(_select(record, value_set_id))))


def _select(record: PatientRecord, value_set_id: str) -> list[LabResult]:
    out = []
    for obs, _ in coded_in(record, "Observation", "code", value_set_id):
        span = effective_span(obs)
        if span is None or not span.exact:
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


def measurement_evidence(m: Measurement, element: str = "Observation.valueQuantity") -> Evidence:
    value = f"{m.comparator or ''}{m.raw_value:g}" if m.raw_value is not None else None
    return Evidence(m.reference, element, value, m.raw_unit, m.effective.isoformat())


def in_window(day: date, as_of: date, within_days: int) -> bool:
    return as_of - timedelta(days=within_days) <= day <= as_of


def retrieval_unknown(record: PatientRecord, what: str) -> Unknown | None:
    """Unknown(retrieval_failed) when Observations were not retrieved in full, else None."""
    outcome = record.retrieval("Observation")
    if outcome.usable_in_full:
        return None
    return Unknown(f"{what}: Observations not fully retrieved ({outcome.reason or outcome.state.value})", True)


def _latest_measurement(
    record: PatientRecord, value_set_id: str, analyte: Analyte, as_of: date, within_days: int
) -> Fact[Measurement]:
    incomplete = retrieval_unknown(record, analyte.name)
    candidates = [r for r in lab_results(record, value_set_id) if in_window(r.day, as_of, within_days)]
    if not candidates:
        return incomplete or Unknown(f"no {analyte.name} result in the {within_days} days before {as_of.isoformat()}")
    for result in reversed(candidates):
        if not record.well_formed(result.resource):
            continue  # malformed: reported in record.issues; the next latest result is used
        fact = measure(record, result, analyte)
        if isinstance(fact, Unknown):
            return fact if incomplete is None else Unknown(incomplete.reason, True, fact.evidence)
        if incomplete is not None:  # a later result may be among those not retrieved
            return Unknown(incomplete.reason, True, (measurement_evidence(fact),))
        return Observed(fact, (measurement_evidence(fact),))
    return incomplete or Unknown(f"no valid {analyte.name} result in the {within_days} days before {as_of.isoformat()}")


def serum_m_protein(record: PatientRecord, as_of: date, within_days: int) -> Fact[Measurement]:
    """The latest serum M-protein (g/dL) within ``within_days`` before ``as_of``."""
    return _latest_measurement(record, "serum-m-protein", SERUM_M_PROTEIN, as_of, within_days)


def urine_m_protein_24h(record: PatientRecord, as_of: date, within_days: int) -> Fact[Measurement]:
    """The latest 24-hour urine M-protein (mg/24 h) within the window; a spot concentration is unknown."""
    return _latest_measurement(record, "urine-m-protein-24h", URINE_M_PROTEIN_24H, as_of, within_days)


# ------------------------------------------------------------------------------ free light chains


@dataclass(frozen=True)
class FlcAssay:
    """Kappa, lambda and ratio results of one collection (any may be missing)."""

    day: date
    kappa: LabResult | None
    lambda_: LabResult | None
    ratio: LabResult | None


def _specimen(result: LabResult) -> str | None:
    specimen = result.resource.get("specimen")
    ref = specimen.get("reference") if isinstance(specimen, dict) else None
    return ref if isinstance(ref, str) else None


def flc_assays(record: PatientRecord) -> list[FlcAssay]:
    """FLC results grouped per collection (day, then specimen when one is named), oldest first. A result
    with no specimen joins the day's only specimen group, if there is exactly one."""
    groups: dict[tuple[date, str | None], dict[str, LabResult]] = {}
    for part, vs_id in (("kappa", "serum-free-kappa"), ("lambda", "serum-free-lambda"), ("ratio", "serum-flc-ratio")):
        for result in lab_results(record, vs_id):
            groups.setdefault((result.day, _specimen(result)), {})[part] = result  # latest of the day wins
    for (day, specimen), parts in list(groups.items()):
        if specimen is not None:
            continue
        named = [key for key in groups if key[0] == day and key[1] is not None]
        if len(named) == 1:
            target = groups[named[0]]
            for part, result in parts.items():
                target.setdefault(part, result)
            del groups[(day, specimen)]
    return [
        FlcAssay(day, parts.get("kappa"), parts.get("lambda"), parts.get("ratio"))
        for (day, _), parts in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or ""))
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


def judge_ratio(ratio: float, obs: dict | None) -> tuple[bool, str | None, str]:
    """(abnormal, direction high/low/None, basis) for a kappa/lambda ratio."""
    rng = _reference_range(obs) if obs else None
    low, high = rng or DEFAULT_RATIO_RANGE
    by_value = "high" if ratio > high else "low" if ratio < low else None
    verdict = _interpretation_direction(obs) if obs else None
    if verdict == "normal":
        return False, None, "interpretation"
    if verdict in ("high", "low"):
        return True, verdict, "interpretation"
    if verdict == "abnormal":
        return True, by_value, "interpretation"
    return by_value is not None, by_value, "referenceRange" if rng else DEFAULT_RATIO_BASIS


@dataclass(frozen=True)
class FlcReading:
    """One assay read: values in mg/dL, ratio judged, and what could not be used."""

    assay: FlcAssay
    value: FreeLightChains | None
    evidence: tuple[Evidence, ...]
    problems: tuple[Unknown, ...]

    def dflc(self, involved: str) -> float | None:
        """Involved minus uninvolved FLC (mg/dL) taking ``involved`` (kappa/lambda) as the clone's
        chain; None unless both chains were measured."""
        v = self.value
        if v is None or v.kappa_mg_dl is None or v.lambda_mg_dl is None:
            return None
        diff = v.kappa_mg_dl - v.lambda_mg_dl
        return round(diff if involved == "kappa" else -diff, 6)


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
    if ratio_m is not None:
        ratio: float | None = ratio_m.value
        abnormal, direction, basis = judge_ratio(ratio, assay.ratio.resource)
    elif kappa is not None and lam is not None and lam.value > 0:
        ratio = round(kappa.value / lam.value, 4)
        abnormal, direction, basis = judge_ratio(ratio, None)
        basis = f"{basis} (ratio computed from kappa and lambda)"
    else:
        ratio, abnormal, direction, basis = None, None, None, None
    if ratio is None and kappa is None and lam is None:
        return FlcReading(assay, None, tuple(evidence), tuple(problems))
    involved = {"high": "kappa", "low": "lambda"}.get(direction or "")
    involved_value = {"kappa": kappa, "lambda": lam}.get(involved or "")
    value = FreeLightChains(
        effective=assay.day,
        ratio=ratio,
        ratio_abnormal=abnormal,
        ratio_abnormal_basis=basis,
        involved=involved,
        involved_mg_dl=involved_value.value if involved_value else None,
        kappa_mg_dl=kappa.value if kappa else None,
        lambda_mg_dl=lam.value if lam else None,
    )
    return FlcReading(assay, value, tuple(evidence), tuple(problems))


def free_light_chains(record: PatientRecord, as_of: date, within_days: int) -> Fact[FreeLightChains]:
    """The latest FLC assay within the window, ratio judged and involved chain named."""
    incomplete = retrieval_unknown(record, "serum free light chains")
    assays = [a for a in flc_assays(record) if in_window(a.day, as_of, within_days)]
    for assay in reversed(assays):
        reading = read_assay(record, assay)
        if reading.value is None:
            if reading.problems:
                first = reading.problems[0]
                return Unknown(first.reason, incomplete is not None, reading.evidence)
            continue
        if incomplete is not None:
            return Unknown(incomplete.reason, True, reading.evidence)
        return Observed(reading.value, reading.evidence)
    return incomplete or Unknown(f"no serum free light chain assay in the {within_days} days before {as_of.isoformat()}")
