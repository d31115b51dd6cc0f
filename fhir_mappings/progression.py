"""IMWG progressive disease (policy Appendix D; Kumar et al. 2016) from lab series or documented status.

Per marker, the results are put in time order (units normalised first) and each result is compared
with the lowest value before it (the nadir, the "lowest response value"). Progression on that result
needs BOTH a >= 25 % rise over the nadir AND the marker's absolute rise:

- serum M-protein: >= 0.5 g/dL;
- 24-hour urine M-protein: >= 200 mg/24 h;
- dFLC (involved - uninvolved), only when serum AND urine M-protein are not measurable
  (serum < 1.0 g/dL and urine < 200 mg/24 h in every result; both must have been measured): > 10 mg/dL;
- bone-marrow plasma cells, only when additionally FLC is not measurable (every assay with a normal
  ratio, or an involved FLC certainly under 10 mg/dL): >= 10 percentage points.

Worked: a 1.2 g/dL nadir rising to 1.6 is not PD (+0.4 < 0.5); 2.4 -> 2.9 is not PD (+21 % < 25 %);
2.0 -> 2.6 is PD (+0.6, +30 %). The Kumar 2016 ">= 1 g/dL when the nadir is >= 5 g/dL" variant is not
in the policy text and is not applied.

Which nadir: the lowest response value is the nadir of the regimen the progression is measured on,
the last regimen (``lines_of_therapy.last_regimen_start``), not the lowest value of the patient's
whole history: a rise over an earlier line's nadir, already followed by new regimens, is the relapse
that led to them, not progression after the last regimen. The series starts at the last regimen's
start, with its baseline: the latest result in the 30 days before the start (the pre-treatment value a
refractory disease rises from; an older result is not the disease at the start). When no regimen is
documented (or therapy could not be retrieved) the whole history is the series. The last regimen is
read finely: maintenance after a transplant is a regimen of its own here, although policy 481 counts
induction, transplant and maintenance as one; a later start can only raise the nadir, so this finds
fewer progressions, never more (a post-transplant value in the 30 days before maintenance is its baseline).

A lab's bound is a bound, never a precise value: each point is the interval its true value lies in
(a value is both ends; "<x" lies between 0 and x; ">x" is at least x; a dFLC from a chain reported as
"<x" spans the width of that bound). The nadir is the lowest *highest* value before the point, the
rise is measured from the point's *lowest* value, so a rise found is certain: "<0.1" can serve as a
nadir (the true nadir is lower: the rise is understated), ">3.0" as a rising result (the true value
is higher), never the other way round. The measurability gates likewise need a value certainly under
the threshold.

Documented status counts too: an mCODE disease-status Observation (97509-4, or 88040-1 of mCODE STU1)
whose value is progression (SNOMED 271299001, or an un-negated "progressive disease" text).

Partial dates. A result dated only to the month or year (``effectiveDateTime`` "2026-10") has no place
in a time series: it is not put in the series (its latest day would be a guess). It is not ignored
either: a progression found without it stands only when no such result could change it. Adding a
point to a series can only lower the nadirs before later points, so it never removes a rise found on
the same marker; it can change a finding only by displacing the regimen's baseline (a result possibly
in the 30 days before the start), or by opening a gate: a serum or urine result possibly at or above the
measurable level makes a dFLC or plasma-cell progression unusable, and an FLC assay can change the
involved chain or the plasma-cell gate. A finding such a result could change is not reported; when no
other finding remains, progression is unknown, citing the result. A documented disease status with a
partial date is kept with its span (``ProgressionFinding.assessed_earliest``) when it is certainly or
possibly on or before ``as_of`` (a status dated this month is on the record now); a stable status is
the latest assessment only when it is certainly after the progression.

``confirmed`` is True when the assessment before the reported one (same marker) also met the rule,
i.e. two consecutive assessments; the policy does not require it, so it is reported, not enforced.
The most recent qualifying event is returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TypeVar

from fhir_mappings.code_index import coded_in
from fhir_mappings.facts import (
    DateSpan,
    Evidence,
    Fact,
    Measurement,
    Observed,
    ProgressionFinding,
    Unknown,
)
from fhir_mappings.labs import (
    FlcReading,
    LabResult,
    bounds,
    flc_assays,
    lab_results,
    measure,
    measurement_evidence,
    read_assay,
    retrieval_unknown,
)
from fhir_mappings.lines_of_therapy import last_regimen_start
from fhir_mappings.parsing import between, effective_span, on_or_before
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.terminology import affirmative_match
from fhir_mappings.units import PERCENT, SERUM_M_PROTEIN, URINE_M_PROTEIN_24H

# The value sets whose Observations (by ``code``) this module selects itself (free light chains come
# through ``labs``); the fallback query asks for them (``data_requirements.observation_codes``).
OBSERVATION_VALUE_SETS = ("serum-m-protein", "urine-m-protein-24h", "bone-marrow-plasma-cells", "disease-status")

MIN_RELATIVE_RISE = 0.25
SERUM_MEASURABLE_G_DL = 1.0  # IMWG measurable thresholds (terminology.md §7), used only for the gates
URINE_MEASURABLE_MG = 200.0
FLC_MEASURABLE_MG_DL = 10.0
BASELINE_DAYS = 30  # a result this close before the regimen's start is its baseline
MARKER_VALUE_SETS = ("serum-m-protein", "urine-m-protein-24h", "serum-free-kappa", "serum-free-lambda",
                     "serum-flc-ratio", "bone-marrow-plasma-cells")
FLC_VALUE_SETS = MARKER_VALUE_SETS[2:5]

T = TypeVar("T")


@dataclass(frozen=True)
class Point:
    """One assessment of a marker: the true value lies in [low, high]; None is no known limit."""

    day: date
    low: float | None  # usable as a rising result when known
    high: float | None  # usable as a nadir when known
    reference: str
    evidence: Evidence


@dataclass(frozen=True)
class Marker:
    name: str  # ProgressionFinding.marker
    label: str
    unit: str
    absolute_rise: float
    strictly_greater: bool = False  # dFLC: "> 10 mg/dL"; the others ">="


SERUM = Marker("serum-m-protein", "serum M-protein", "g/dL", 0.5)
URINE = Marker("urine-m-protein", "urine M-protein", "mg/24h", 200.0)
DFLC = Marker("dflc", "dFLC", "mg/dL", 10.0, strictly_greater=True)
BMPC = Marker("bone-marrow-plasma-cells", "bone-marrow plasma cells", "%", 10.0)


def _point(m: Measurement) -> Point:
    low, high = bounds(m)
    return Point(m.effective, low, high, m.reference, measurement_evidence(m))


def _from_regimen_start(items: list[T], day_of: Callable[[T], date], since: date | None) -> list[T]:
    """Items (oldest first) of the regimen that started on ``since``: its baseline (the latest item in
    the ``BASELINE_DAYS`` before the start) and every item from the start on; all when ``since`` is None."""
    if since is None:
        return items
    before = [i for i in items if since - timedelta(days=BASELINE_DAYS) <= day_of(i) < since]
    return before[-1:] + [i for i in items if day_of(i) >= since]


def _series(record: PatientRecord, value_set_id: str, analyte, as_of: date, since: date | None) -> list[Point]:
    """One point per day (the day's last result), units normalised; unusable results are skipped, and so
    are results with a partial date (``_unplaced`` weighs them)."""
    by_day: dict[date, Point] = {}
    for result in lab_results(record, value_set_id):
        if result.day > as_of or not result.span.exact:
            continue
        m = measure(record, result, analyte)
        if isinstance(m, Measurement):
            by_day[m.effective] = _point(m)
    return _from_regimen_start([by_day[d] for d in sorted(by_day)], lambda p: p.day, since)


def _rise_events(series: list[Point], marker: Marker) -> list[tuple[Point, Point, float, float]]:
    """(result, nadir, absolute rise, relative rise) for every result that meets the marker's rule. The
    nadir is the running minimum of the points before (the first of equal lows), so the series is
    read once."""
    events = []
    nadir: Point | None = None
    for current in series:
        if nadir is not None and nadir.high is not None and current.low is not None:  # a nadir has a high
            rise = round(current.low - nadir.high, 6)
            relative = round(rise / nadir.high, 6) if nadir.high > 0 else (float("inf") if rise > 0 else 0.0)
            absolute_ok = rise > marker.absolute_rise if marker.strictly_greater else rise >= marker.absolute_rise
            if absolute_ok and relative >= MIN_RELATIVE_RISE:
                events.append((current, nadir, rise, relative))
        if current.high is not None and (nadir is None or nadir.high is None or current.high < nadir.high):
            nadir = current
    return events


def _finding(series: list[Point], marker: Marker) -> tuple[ProgressionFinding, tuple[Evidence, ...]] | None:
    events = _rise_events(series, marker)
    if not events:
        return None
    current, nadir, rise, relative = events[-1]
    index = series.index(current)
    confirmed = index > 0 and any(e[0] is series[index - 1] for e in events)
    pct = "" if relative == float("inf") else f", +{relative * 100:.0f}%"
    at_least = "" if current.high == current.low else "at least "
    at_most = "" if nadir.low == nadir.high else "at most "
    basis = (
        f"{marker.label} {at_least}{current.low:g} {marker.unit} on {current.day.isoformat()} vs nadir "
        f"{at_most}{nadir.high:g} {marker.unit} on {nadir.day.isoformat()} (+{rise:g} {marker.unit}{pct})"
    )
    return ProgressionFinding(current.day, basis, marker.name, confirmed), (current.evidence, nadir.evidence)


def _dflc_series(readings: list[FlcReading]) -> list[Point]:
    """dFLC per assay, the involved chain fixed by the first abnormal ratio (the clone does not switch)."""
    involved = next((r.value.involved for r in readings if r.value and r.value.involved), None)
    if involved is None:
        return []
    points = []
    for reading in readings:
        dflc = reading.dflc(involved)
        if dflc is not None:
            points.append(Point(reading.assay.day, *dflc, reading.evidence[0].reference, reading.evidence[0]))
    return points


def _flc_not_measurable(reading: FlcReading) -> bool:
    """Certainly not measurable by FLC: a normal ratio, or the involved chain (both chains when the
    involved one is not known) certainly under 10 mg/dL."""
    value = reading.value
    assert value is not None, "only readings with a value reach here"
    if value.ratio_abnormal is False:
        return True
    involved = {"kappa": reading.kappa, "lambda": reading.lambda_}.get(value.involved or "")
    chains = (involved,) if involved is not None else (reading.kappa, reading.lambda_)
    highs = [bounds(m)[1] if m is not None else None for m in chains]
    return all(high is not None and high < FLC_MEASURABLE_MG_DL for high in highs)


def _all_below(series: list[Point], threshold: float) -> bool:
    return all(p.high is not None and p.high < threshold for p in series)


def _documented_status(
    record: PatientRecord, as_of: date, value_set_id: str = "disease-status-progression"
) -> list[tuple[ProgressionFinding, Evidence]]:
    """Disease-status Observations whose value is in ``value_set_id``: progression
    (``disease-status-progression``) or its absence (``disease-status-not-progressing``)."""
    found = []
    progressive = value_set_id == "disease-status-progression"
    for obs, _ in coded_in(record, "Observation", "code", "disease-status"):
        hit = affirmative_match(value_set_id, obs.get("valueCodeableConcept"))
        span = effective_span(obs)
        if hit is None or span is None or on_or_before(span, as_of) is False or not record.well_formed(obs):
            continue
        span = DateSpan(span.earliest, min(span.latest, as_of))  # on the record now: made by ``as_of``
        shown = hit.code or hit.display
        reference = record.reference_of(obs)
        basis = f"documented disease status: {hit.display or shown}"
        finding = ProgressionFinding(span.latest, basis, "disease-status", progressive=progressive,
                                     assessed_earliest=None if span.exact else span.earliest)
        found.append((finding, Evidence(reference, "Observation.valueCodeableConcept", shown, None, span.isoformat())))
    return found


def latest_disease_assessment(record: PatientRecord, as_of: date) -> Fact[ProgressionFinding]:
    """The most recent assessment on or before ``as_of``: a progression event (as in
    ``progressive_disease``) or a documented status saying the disease is not progressing, whichever
    is later (a progression wins a tie). Lets a policy tell "not progressing, as documented after the
    last regimen" (a contradiction) from "no assessment on the record" (unknown)."""
    progression = progressive_disease(record, as_of)
    stable = _documented_status(record, as_of, "disease-status-not-progressing")
    if not stable:
        return progression
    finding, evidence = max(stable, key=lambda c: c[0].assessed)
    if isinstance(progression, Observed) and on_or_before(finding.assessed_span, progression.value.assessed) is not False:
        return progression  # the stable status is not certainly the later one
    return Observed(finding, (evidence,))


def progressive_disease(record: PatientRecord, as_of: date) -> Fact[ProgressionFinding]:
    """The most recent progression event on or before ``as_of``, measured on the last regimen (module
    docstring). Found progression stands even if Observations were only partly retrieved; no
    progression found in a partial retrieval is unknown with retrieval_failed. Worked out once per
    record: ``latest_disease_assessment`` and the diagnosis both build on it."""
    return record.memo(("progression.progressive_disease", as_of), lambda: _progressive_disease(record, as_of))


def _progressive_disease(record: PatientRecord, as_of: date) -> Fact[ProgressionFinding]:
    start = last_regimen_start(record, as_of)
    since = start.value if isinstance(start, Observed) else None
    candidates: list[tuple[ProgressionFinding, tuple[Evidence, ...]]] = []
    serum = _series(record, "serum-m-protein", SERUM_M_PROTEIN, as_of, since)
    urine = _series(record, "urine-m-protein-24h", URINE_M_PROTEIN_24H, as_of, since)
    for series, marker in ((serum, SERUM), (urine, URINE)):
        hit = _finding(series, marker)
        if hit:
            candidates.append(hit)
    notes = []
    m_protein_not_measurable = (
        bool(serum) and bool(urine) and _all_below(serum, SERUM_MEASURABLE_G_DL) and _all_below(urine, URINE_MEASURABLE_MG)
    )
    readings = [read_assay(record, a) for a in flc_assays(record) if a.day <= as_of and a.span.exact]
    readings = _from_regimen_start([r for r in readings if r.value is not None], lambda r: r.assay.day, since)
    dflc = _dflc_series(readings)
    if m_protein_not_measurable:
        hit = _finding(dflc, DFLC)
        if hit:
            candidates.append(hit)
        if readings and all(_flc_not_measurable(r) for r in readings):
            hit = _finding(_series(record, "bone-marrow-plasma-cells", PERCENT, as_of, since), BMPC)
            if hit:
                candidates.append(hit)
    elif _finding(dflc, DFLC) and not (serum and urine):
        notes.append("a dFLC rise was seen but serum and urine M-protein were not both measured, so it cannot be used")
    for finding, documented in _documented_status(record, as_of):
        candidates.append((finding, (documented,)))
    placed = [c for c in candidates if _unplaced(record, c[0].marker, as_of, since) is None]
    if placed:
        finding, evidence = max(placed, key=lambda c: c[0].assessed)
        if finding.marker != "disease-status" and since is not None:
            finding = replace(finding, basis=f"{finding.basis}; measured on the last regimen, started {since.isoformat()}")
            evidence += start.evidence
        return Observed(finding, evidence)
    incomplete = retrieval_unknown(record, "progressive disease")
    if candidates:
        finding, evidence = max(candidates, key=lambda c: c[0].assessed)
        result = _unplaced(record, finding.marker, as_of, since)
        assert result is not None, "no candidate was placed, so each has an unplaced result"
        return Unknown(
            f"{finding.basis}; but a result dated only {result.span.isoformat()} may fall in the series and could "
            "change this finding (its baseline, or whether M-protein or FLC is measurable)",
            incomplete is not None,
            evidence + (_dated(result),),
        )
    if incomplete is not None:
        return incomplete
    unplaced = [r for vs in MARKER_VALUE_SETS for r in _partial(record, vs, date.min, as_of)]
    if unplaced:
        notes.append("results dated only to the month or year are not placed in a series and could show progression")
    reason = "no progressive disease shown by serum/urine M-protein, FLC, bone-marrow plasma cells or disease status"
    return Unknown("; ".join([reason, *notes]), evidence=tuple(_dated(r) for r in unplaced))


def _dated(result: LabResult) -> Evidence:
    return Evidence(result.reference, "Observation.effective[x]", date=result.when)


def _partial(record: PatientRecord, value_set_id: str, first: date, last: date, gate=None) -> list[LabResult]:
    """Results of the value set whose partial date may fall in ``first`` .. ``last``; with a ``gate``
    (analyte, measurable level), only those whose value may reach that level."""
    found = []
    for result in lab_results(record, value_set_id):
        if result.span.exact or between(result.span, first, last) is False:
            continue
        if gate is not None:
            m = measure(record, result, gate[0])
            high = bounds(m)[1] if isinstance(m, Measurement) else 0.0
            if high is not None and high < gate[1]:
                continue
        found.append(result)
    return found


def _unplaced(record: PatientRecord, marker: str, as_of: date, since: date | None) -> LabResult | None:
    """A partial-dated result that could change a progression found on ``marker`` (module docstring):
    one possibly in the baseline window of the same marker, or, for the gated markers (dFLC, plasma
    cells), a serum or urine result possibly measurable or an FLC result, possibly in the series."""
    first = since - timedelta(days=BASELINE_DAYS) if since is not None else date.min
    before_start = since - timedelta(days=1) if since is not None else None
    own = {SERUM.name: "serum-m-protein", URINE.name: "urine-m-protein-24h", BMPC.name: "bone-marrow-plasma-cells"}
    found = _partial(record, own[marker], first, before_start) if marker in own and before_start else []
    if marker in (DFLC.name, BMPC.name):
        found += _partial(record, "serum-m-protein", first, as_of, (SERUM_M_PROTEIN, SERUM_MEASURABLE_G_DL))
        found += _partial(record, "urine-m-protein-24h", first, as_of, (URINE_M_PROTEIN_24H, URINE_MEASURABLE_MG))
        found += [r for vs in FLC_VALUE_SETS for r in _partial(record, vs, first, as_of)]
    return found[0] if found else None
