"""Prior lines of anti-myeloma therapy, counted as an interval [minimum, maximum].

The rule as implemented (IMWG uniform reporting, Rajkumar 2011: a line is a planned course, which may
be induction -> transplant -> maintenance; both policies' footnotes say the same):

1. Inputs: anti-myeloma drug exposures (``therapy.timed_exposures``: Appendix B agents, IMiD, PI,
   anti-CD38, anti-BCMA incl. BCMA CAR-T), autologous HSCT procedures, and CAR-T infusions.
2. Units: exposures sharing an explicit group (the same CarePlan/RequestGroup, or the same grouping
   request, via ``basedOn``/``partOf``, or the same ``groupIdentifier``) form one unit; every other
   exposure is a unit of its own. Explicit grouping wins over dates.
3. Regimens, in order of start: a unit joins the current regimen when it starts within 28 days of the
   regimen's start, or when it only continues drugs already in the regimen (refills, dropping a drug)
   within 90 days of the regimen's last activity. Otherwise it starts a new regimen.
4. Transplant: an autologous HSCT belongs to the line of the last regimen started before it; regimens of
   only melphalan/cyclophosphamide/steroids starting within 60 days before it are conditioning or
   mobilisation (same line). A regimen starting within 180 days after the transplant is maintenance
   (marked so, or at most two agents among lenalidomide, thalidomide, pomalidomide, bortezomib,
   ixazomib, carfilzomib, daratumumab, isatuximab that are single or all used in the induction) and
   belongs to the line; a regimen marked consolidation belongs to the line only when
   ``consolidation_in_line``; an unmarked non-maintenance regimen there is consolidation or a new
   line (ambiguous when ``consolidation_in_line``, else a new line). A transplant with no regimen
   before it is a line of its own.
5. Every other regimen is a new line.

Where the record is ambiguous the interval widens: the minimum merges and the maximum separates
(1) units of different explicit groups starting within 28 days, (2) starts whose partial dates may or
may not fall within 28 days, (3) a continuation after a gap over 90 days, (4) an unmarked post-transplant
regimen when ``consolidation_in_line``. A regimen of steroids only (dexamethasone, prednisone) is not
counted in the minimum but is in the maximum; each undated unit adds one to the maximum only (but at
least one line is shown when non-steroid anti-myeloma therapy exists); a generic CAR-T procedure code
(product not stated) with no CAR-T product exposure adds one to the maximum. ``lines`` lists the lines of the minimum reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from fhir_mappings.facts import Evidence, Fact, LineOfTherapy, LinesOfTherapy, Observed, Unknown
from fhir_mappings.therapy import CAR_T_PRODUCTS, EXPOSURE_TYPES, TimedExposure, incomplete, timed_exposures

SAME_REGIMEN_DAYS = 28
CONTINUATION_GAP_DAYS = 90
PRE_TRANSPLANT_DAYS = 60
POST_TRANSPLANT_DAYS = 180
STEROIDS = frozenset({"dexamethasone", "prednisone"})
TRANSPLANT_ADJUNCTS = STEROIDS | {"melphalan", "cyclophosphamide"}
PRODUCT_CLASSES = frozenset(CAR_T_PRODUCTS) | {"car-t-products"}
MAINTENANCE_AGENTS = frozenset(
    {"lenalidomide", "thalidomide", "pomalidomide", "bortezomib", "ixazomib", "carfilzomib", "daratumumab", "isatuximab"}
)


@dataclass
class _Regimen:
    """Exposures given as one regimen. What ``_joins`` asks of it for every later unit (ingredients, last
    activity) is kept up to date as units join, so building the regimens stays linear in the record."""

    items: list[TimedExposure]
    start: date  # earliest possible start
    start_latest: date
    groups: set[str] = field(default_factory=set)
    ingredients: set[str] = field(default_factory=set)
    last_activity: date = date.min

    @classmethod
    def of(cls, unit: list[TimedExposure], start: date, start_latest: date, groups: set[str]) -> _Regimen:
        regimen = cls([], start, start_latest)
        regimen.add(unit, groups)
        return regimen

    def add(self, unit: list[TimedExposure], groups: set[str]) -> None:
        self.items.extend(unit)
        self.groups |= groups
        self.ingredients.update(t.exposure.ingredient for t in unit)
        days = [d for t in unit for d in (t.exposure.start, t.exposure.end, t.last_dose) if d]
        self.last_activity = max([self.last_activity, *days])

    @property
    def agents(self) -> set[str]:
        return self.ingredients - STEROIDS

    @property
    def marker(self) -> str | None:
        return next((t.marker for t in self.items if t.marker), None)


@dataclass
class _Line:
    regimens: list[_Regimen]
    components: list[str]
    transplants: list[TimedExposure] = field(default_factory=list)


def lines_of_therapy(record, as_of: date, consolidation_in_line: bool) -> Fact[LinesOfTherapy]:
    """Prior lines as [minimum, maximum] (module docstring). Unknown when no anti-myeloma therapy is in
    the record (documentation missing) or when a therapy resource type was not retrieved completely."""
    failed = incomplete(record, EXPOSURE_TYPES)
    if failed:
        return Unknown(failed, retrieval_failed=True)
    timed = [t for t in timed_exposures(record, as_of) if _counts(t)]
    if not timed:
        return Unknown("no anti-myeloma therapy is documented in the record")
    low = _lines(timed, consolidation_in_line, merge=True)
    high = _lines(timed, consolidation_in_line, merge=False)
    extra = _undated_units(timed) + _unplaced_car_t(timed)
    beyond_steroids = any(t.exposure.ingredient not in STEROIDS for t in timed)
    minimum = len(low) or (1 if beyond_steroids else 0)  # therapy shown, even if undated: at least one line
    maximum = max(len(high) + extra, minimum)
    lines = tuple(_describe(i + 1, line) for i, line in enumerate(low))
    classes = frozenset().union(*(t.exposure.classes for t in timed))
    evidence = tuple(
        Evidence(t.exposure.reference, "exposure", t.exposure.ingredient, date=_iso(t.exposure.start)) for t in timed
    )
    return Observed(LinesOfTherapy(minimum, maximum, lines, classes), evidence)


def last_regimen_last_dose(record, as_of: date) -> Fact[date]:
    """Last documented dose day of the last anti-myeloma regimen (the last line of the finest reading;
    steroid-only regimens and transplant procedures are not doses of a regimen). Unknown when the
    last regimen is still running with no dose recorded after its start, or nothing is documented."""
    failed = incomplete(record, EXPOSURE_TYPES)
    if failed:
        return Unknown(failed, retrieval_failed=True)
    timed = [t for t in timed_exposures(record, as_of) if _counts(t)]
    regimens = [r for line in _lines(timed, False, merge=False) for r in line.regimens if r.agents]
    if not regimens:
        return Unknown("no dated anti-myeloma regimen is documented")
    last = max(regimens, key=lambda r: r.start)
    doses = [(t.last_dose, t) for t in last.items if t.last_dose]
    if any(t.ongoing for t in last.items) and not doses:
        return Unknown("the last regimen is ongoing and no dose date is documented")
    if not doses:
        return Unknown("the last regimen has no documented dose date")
    day, source = max(doses, key=lambda pair: pair[0])
    return Observed(day, (Evidence(source.exposure.reference, "last dose", source.exposure.ingredient, date=day.isoformat()),))


# ------------------------------------------------------------------------------------ the rule


def _counts(t: TimedExposure) -> bool:
    classes = t.exposure.classes
    return bool(classes & {"anti-myeloma-agents", "autologous-hsct", "car-t-history"})


def _is_transplant(t: TimedExposure) -> bool:
    return "autologous-hsct" in t.exposure.classes and "anti-myeloma-agents" not in t.exposure.classes


def _is_generic_car_t(t: TimedExposure) -> bool:
    return "car-t-history" in t.exposure.classes and "anti-myeloma-agents" not in t.exposure.classes


def _lines(timed: list[TimedExposure], consolidation_in_line: bool, merge: bool) -> list[_Line]:
    drugs = [t for t in timed if t.exposure.start and not _is_transplant(t) and not _is_generic_car_t(t)]
    transplants = sorted((t for t in timed if t.exposure.start and _is_transplant(t)), key=lambda t: t.exposure.start)
    regimens = _regimens(_units(drugs, timed), merge)
    if merge:
        regimens = [r for r in regimens if r.agents]  # steroid-only regimens: only in the maximum
    events = sorted([(r.start, 1, r) for r in regimens] + [(t.exposure.start, 0, t) for t in transplants], key=lambda e: (e[0], e[1]))
    lines: list[_Line] = []
    transplant_day: date | None = None
    for day, _, event in events:
        if isinstance(event, TimedExposure):
            if lines:
                lines[-1].components.append("autologous-hsct")
                lines[-1].transplants.append(event)
            else:
                lines.append(_Line([], ["autologous-hsct"], [event]))
            transplant_day = day
            continue
        phase = _phase(event, lines, transplant_day, consolidation_in_line, merge, events)
        if phase is None:
            lines.append(_Line([event], ["induction" if _has_later_transplant(day, transplants) else "regimen"]))
            transplant_day = None
        else:
            lines[-1].regimens.append(event)
            lines[-1].components.append(phase)
    return lines


def _phase(regimen: _Regimen, lines: list[_Line], transplant_day, consolidation_in_line, merge, events) -> str | None:
    """The component name when the regimen belongs to the current line, else None (a new line)."""
    if not lines:
        return None
    upcoming = [d for d, kind, _ in events if kind == 0 and d >= regimen.start]
    if upcoming and regimen.ingredients <= TRANSPLANT_ADJUNCTS and (upcoming[0] - regimen.start).days <= PRE_TRANSPLANT_DAYS and lines[-1].regimens:
        return "conditioning"
    if transplant_day is None or (regimen.start - transplant_day).days > POST_TRANSPLANT_DAYS:
        return None
    marker = regimen.marker
    induction = set().union(*(r.agents for r in lines[-1].regimens)) if lines[-1].regimens else set()
    if marker == "maintenance" or _maintenance_like(regimen, induction):
        return "maintenance"
    if marker == "consolidation":
        return "consolidation" if consolidation_in_line else None
    if consolidation_in_line and merge:
        return "consolidation"
    return None


def _maintenance_like(regimen: _Regimen, induction: set[str]) -> bool:
    agents = regimen.agents
    return 0 < len(agents) <= 2 and agents <= MAINTENANCE_AGENTS and (len(agents) == 1 or agents <= induction)


def _has_later_transplant(day: date, transplants: list[TimedExposure]) -> bool:
    return any(t.exposure.start >= day for t in transplants)


def _units(drugs: list[TimedExposure], everything: list[TimedExposure]) -> list[list[TimedExposure]]:
    """Explicitly grouped exposures together (undated members of a dated group join it), others alone."""
    by_group: dict[str, list[TimedExposure]] = {}
    units: list[list[TimedExposure]] = []
    for t in drugs:
        if t.exposure.group:
            if t.exposure.group not in by_group:
                by_group[t.exposure.group] = []
                units.append(by_group[t.exposure.group])
            by_group[t.exposure.group].append(t)
        else:
            units.append([t])
    for t in everything:
        if t.exposure.start is None and t.exposure.group in by_group:
            by_group[t.exposure.group].append(t)
    return sorted(units, key=_unit_order)


def _unit_order(unit: list[TimedExposure]) -> tuple[date, bool]:
    """By start; on the same day, steroids alone after the other drugs, so the dexamethasone given with
    the first dose of a new regimen joins that regimen, not the previous one (whatever the record order)."""
    start = min(t.exposure.start for t in unit if t.exposure.start)
    return start, all(t.exposure.ingredient in STEROIDS for t in unit)


def _regimens(units: list[list[TimedExposure]], merge: bool) -> list[_Regimen]:
    regimens: list[_Regimen] = []
    for unit in units:
        dated = [t for t in unit if t.exposure.start]
        start = min(t.exposure.start for t in dated)
        start_latest = min(t.start_latest or t.exposure.start for t in dated)
        groups = {t.exposure.group for t in unit if t.exposure.group}
        current = regimens[-1] if regimens else None
        if current is not None and _joins(current, unit, start, start_latest, groups, merge):
            current.add(unit, groups)
            continue
        regimens.append(_Regimen.of(unit, start, start_latest, groups))
    return regimens


def _joins(current: _Regimen, unit, start: date, start_latest: date, groups: set[str], merge: bool) -> bool:
    window = timedelta(days=SAME_REGIMEN_DAYS)
    certainly_within = start_latest - current.start <= window
    possibly_within = start - current.start_latest <= window
    other_group = bool(groups and current.groups and not groups & current.groups)
    if groups & current.groups:
        return True
    if certainly_within and not other_group:
        return True
    if possibly_within:
        return merge  # different explicit groups, or partial dates: ambiguous
    agents = {t.exposure.ingredient for t in unit} - STEROIDS
    if agents <= current.agents and not other_group:
        if (start - current.last_activity).days <= CONTINUATION_GAP_DAYS:
            return True
        return merge  # same drugs after a long gap: continuation or re-treatment
    return False


def _undated_units(timed: list[TimedExposure]) -> int:
    dated_groups = {t.exposure.group for t in timed if t.exposure.start and t.exposure.group}
    undated = [t for t in timed if t.exposure.start is None and not _is_transplant(t) and not _is_generic_car_t(t)]
    keys = {t.exposure.group or t.exposure.reference for t in undated if t.exposure.group not in dated_groups}
    return len(keys)


def _unplaced_car_t(timed: list[TimedExposure]) -> int:
    has_product = any(t.exposure.classes & PRODUCT_CLASSES for t in timed)
    has_history = any(_is_generic_car_t(t) for t in timed)
    return 1 if has_history and not has_product else 0


def _describe(number: int, line: _Line) -> LineOfTherapy:
    items = [t for r in line.regimens for t in r.items] + line.transplants
    starts = [t.exposure.start for t in items if t.exposure.start]
    ends = [d for t in items for d in (t.exposure.end, t.last_dose, t.exposure.start) if d]
    drugs = [t for r in line.regimens for t in r.items]
    return LineOfTherapy(
        number=number,
        start=min(starts) if starts else None,
        end=max(ends) if ends else None,
        ingredients=tuple(sorted({t.exposure.ingredient for t in drugs})),
        classes=frozenset().union(*(t.exposure.classes for t in drugs)) if drugs else frozenset(),
        components=tuple(line.components),
        references=tuple(t.exposure.reference for t in items),
    )


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
