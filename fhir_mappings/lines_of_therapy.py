"""Prior lines of anti-myeloma therapy, counted as an interval [minimum, maximum].

The rule as implemented (IMWG uniform reporting, Rajkumar 2011: a line is a planned course, which may
be induction -> transplant -> consolidation -> maintenance; CP.PHAR.481's footnote names induction, HSCT
and maintenance, CP.PHAR.769's also consolidation):

1. Inputs (``therapy.timed_exposures``): anti-myeloma drug exposures (Appendix B agents, IMiD, PI,
   anti-CD38, anti-BCMA incl. BCMA CAR-T), stem-cell transplant Procedures, CAR-T infusions, and
   fludarabine (never a line itself; it only marks lymphodepletion, rule 5).
   - A transplant counts whatever code or name it carries: autologous (``autologous-hsct``), allogeneic
     (``allogeneic-hsct``) or type not stated (``hsct-type-not-stated``), in CPT, ICD-10-PCS or SNOMED
     CT, or only as text ("stem cell transplant", "ASCT", "auto-HCT"). Allogeneic counts too: the
     policies say "hematopoietic stem cell transplant" without a type, and IMWG counts a planned
     transplant of either kind inside the line it completes (tandem auto -> allo is one line). Only a
     Procedure is a transplant (a drug whose name mentions the transplant is not), and not a stem-cell
     mobilisation or collection (``stem-cell-collection``: "stem cell harvest for autologous transplant").
   - Supportive drugs (antiemetics, G-CSF, antimicrobials, bisphosphonates, denosumab, IVIG,
     tocilizumab, mesna, allopurinol...) are in no anti-myeloma value set, so they never form a regimen.
2. Units: exposures sharing an explicit group (the same CarePlan/RequestGroup, or the same grouping
   request, via ``basedOn``/``partOf``, or the same ``groupIdentifier``) form one unit; every other
   exposure is a unit of its own. Explicit grouping wins over dates.
3. Regimens, in order of start (on one day, steroid-only units last): a unit joins the current regimen
   when it starts within 28 days of the regimen's start, or when it only continues drugs already in
   the regimen (refills, dropping a drug) within 90 days of the regimen's last activity. Otherwise it
   starts a new regimen.
4. Phases stated in words win over the dates. ``therapy._marker`` reads the phase a resource, its
   request or its CarePlan states (category, courseOfTherapyType, reasons, notes, dosage text, title,
   narrative); a text naming several phases states none. A regimen labelled maintenance belongs to the
   current line however late it starts (with or without a transplant); labelled consolidation belongs
   to it under ``consolidation_in_line`` (769), and under 481, which does not name consolidation, it
   is ambiguous (the minimum keeps it in the line as IMWG does, the maximum counts a new line);
   labelled induction starts a new line; labelled conditioning, lymphodepletion or mobilisation is a
   preparatory step (rule 5).
5. Preparatory steps are not lines. Conditioning: a regimen of only melphalan, cyclophosphamide,
   fludarabine, bendamustine and steroids starting within 60 days before a transplant, or labelled
   conditioning (of those drugs, or every exposure labelled), belongs to the current line. Lymphodepletion:
   cyclophosphamide and/or bendamustine (with or without fludarabine) given within 7 days of fludarabine,
   within the 14 days before a CAR-T infusion, or labelled as a preparatory step, is recorded in
   the current line without being one of its drugs, and before any line it belongs to none (the
   lymphodepletion of the CAR-T being ordered is not a prior line). The same drugs alone in the 14 days
   before the decision date, with nothing else to tell, may be that lymphodepletion or a last regimen:
   ambiguous.
6. Transplant: a transplant belongs to the line of the last regimen started before it (a transplant
   with no regimen before it is a line of its own). An unlabelled regimen starting within 180 days after
   it is maintenance when it looks like maintenance (at most two agents among lenalidomide, thalidomide,
   pomalidomide, bortezomib, ixazomib, carfilzomib, daratumumab, isatuximab that are single or all used
   in the induction); otherwise it is consolidation or a new line, which is ambiguous under both policies.
7. Every other regimen is a new line.

Where the record is ambiguous the interval widens: the minimum merges and the maximum separates
(1) units of different explicit groups starting within 28 days, (2) starts whose partial dates may or
may not fall within a rule's window (28 days, 60 days before a transplant, the 7 and 14 days of
lymphodepletion, 180 days after a transplant: the minimum applies the rule when some possible day
falls within, the maximum only when every possible day does), (3) a continuation after a gap over 90 days, (4) an unlabelled
post-transplant regimen that is not maintenance, (5) labelled consolidation under 481. A regimen of
steroids only (dexamethasone, prednisone) is not counted in the minimum but is in the maximum, unless
each of its exposures states a supportive purpose (premedication, nausea, CRS or ICANS, prophylaxis:
``therapy.MARKERS``), which is no line at all; each
undated unit adds one to the maximum only (but at least one line is shown when non-steroid therapy
exists outside the dated regimens); a generic CAR-T procedure code (product not stated) with no CAR-T
product exposure adds one to the maximum. ``lines`` lists the lines of the minimum reading.

Cost: each unit, regimen and transplant is looked at a bounded number of times (a regimen keeps its
ingredients and last activity as units join; transplants and infusions are found by bisection), so the
count grows linearly with the record.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, timedelta

from fhir_mappings.facts import (
    DateSpan,
    Evidence,
    Fact,
    LineOfTherapy,
    LinesOfTherapy,
    Observed,
    Unknown,
)
from fhir_mappings.therapy import (
    CAR_T_PRODUCTS,
    EXPOSURE_TYPES,
    TRACKED,
    TimedExposure,
    _period,
    incomplete,
    timed_exposures,
)

SAME_REGIMEN_DAYS = 28
CONTINUATION_GAP_DAYS = 90
PRE_TRANSPLANT_DAYS = 60
POST_TRANSPLANT_DAYS = 180
STEROIDS = frozenset({"dexamethasone", "prednisone"})
TRANSPLANT_ADJUNCTS = STEROIDS | {"melphalan", "cyclophosphamide"}
PRODUCT_CLASSES = frozenset(CAR_T_PRODUCTS) | {"car-t-products"}
CAR_T_CLASSES = PRODUCT_CLASSES | {"car-t-history"}
TRANSPLANT_CLASSES_ORDERED = ("autologous-hsct", "allogeneic-hsct", "hsct-type-not-stated")
TRANSPLANT_CLASSES = frozenset(TRANSPLANT_CLASSES_ORDERED)
LINE_INPUTS = TRACKED + ("allogeneic-hsct", "hsct-type-not-stated", "stem-cell-collection", "fludarabine")
LYMPHODEPLETING = frozenset({"cyclophosphamide", "bendamustine", "fludarabine"})
PREPARATIVE = TRANSPLANT_ADJUNCTS | LYMPHODEPLETING
LYMPHODEPLETION_DAYS = 14
FLUDARABINE_DAYS = 7
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
        """The phase its labelled exposures agree on; None when none is labelled or labels disagree (the
        premedication note of its dexamethasone says nothing of the regimen's phase)."""
        found = {t.marker for t in self.items if t.marker and t.marker != "supportive"}
        return found.pop() if len(found) == 1 else None


@dataclass
class _Line:
    regimens: list[_Regimen]
    components: list[str]
    transplants: list[TimedExposure] = field(default_factory=list)
    prepared: list[TimedExposure] = field(default_factory=list)  # lymphodepletion: in the line, not its drugs
    agents: set[str] = field(default_factory=set)

    def add(self, regimen: _Regimen, component: str) -> None:
        self.regimens.append(regimen)
        self.components.append(component)
        self.agents |= regimen.agents


@dataclass(frozen=True)
class _Infusions:
    """Sorted days of the cell infusions and of the drugs that prepare them, to place a regimen among them."""

    transplants: list[date]
    car_t: list[date]
    fludarabine: list[date]
    as_of: date  # the CAR-T being ordered will be infused after it

    @staticmethod
    def next_on_or_after(days: list[date], day: date) -> date | None:
        i = bisect_left(days, day)
        return days[i] if i < len(days) else None

    @staticmethod
    def any_within(days: list[date], first: date, last: date) -> bool:
        i = bisect_left(days, first)
        return i < len(days) and days[i] <= last


def lines_of_therapy(record, as_of: date, consolidation_in_line: bool) -> Fact[LinesOfTherapy]:
    """Prior lines as [minimum, maximum] (module docstring). Unknown when no anti-myeloma therapy is in
    the record (documentation missing) or when a therapy resource type was not retrieved completely."""
    failed = incomplete(record, EXPOSURE_TYPES)
    if failed:
        return Unknown(failed, retrieval_failed=True)
    found = timed_exposures(record, as_of, LINE_INPUTS)
    timed = [t for t in found if _counts(t)]
    if not timed:
        return Unknown("no anti-myeloma therapy is documented in the record")
    low, minimum, maximum = _count(found, as_of, consolidation_in_line)
    # A record of status "unknown" may or may not be a dose, and dropping it can raise the count as well
    # as lower it (a regimen's first dose left out makes its drug look added later: a new line). So the
    # record is read both ways and the interval covers both readings.
    with_doubtful = timed_exposures(record, as_of, LINE_INPUTS, doubtful=True)
    if len(with_doubtful) != len(found):
        _, other_min, other_max = _count(with_doubtful, as_of, consolidation_in_line)
        minimum, maximum = min(minimum, other_min), max(maximum, other_max)
    lines = tuple(_describe(i + 1, line) for i, line in enumerate(low))
    classes = frozenset().union(*(t.exposure.classes for t in timed))
    evidence = tuple(
        Evidence(t.exposure.reference, "exposure", t.exposure.ingredient, date=_iso(t.exposure.start)) for t in timed
    )
    return Observed(LinesOfTherapy(minimum, maximum, lines, classes), evidence)


def _count(found: tuple[TimedExposure, ...], as_of: date, consolidation_in_line: bool) -> tuple[list[_Line], int, int]:
    """(the lines of the minimum reading, minimum, maximum) of one reading of the record's exposures."""
    timed = [t for t in found if _counts(t)]
    low = _lines(found, as_of, consolidation_in_line, merge=True)
    high = _lines(found, as_of, consolidation_in_line, merge=False)
    extra = _undated_units(timed) + _unplaced_car_t(timed)
    # therapy shown outside the dated regimens (undated drugs, transplants, CAR-T): at least one line
    elsewhere = any(t.exposure.ingredient not in STEROIDS for t in timed if not (_is_drug(t) and t.exposure.start))
    minimum = len(low) or (1 if elsewhere else 0)
    return low, minimum, max(len(high) + extra, minimum)


def last_regimen_last_dose(record, as_of: date) -> Fact[DateSpan]:
    """The days the last dose of the last anti-myeloma regimen may have been (the last line of the finest
    reading; steroid-only regimens, lymphodepletion and transplant procedures are not doses of a
    regimen): one day, or a span when the record's dates are partial (the last of several doses known
    to a span each lies between the latest earliest day and the latest latest day). Unknown when the
    last regimen is still running with no dose recorded after its start, or nothing is documented."""
    last = _last_regimen(record, as_of)
    if isinstance(last, Unknown):
        return last
    doses = [(_dose_span(record, t, as_of), t) for t in last.items if t.last_dose]
    if any(t.ongoing for t in last.items) and not doses:
        return Unknown("the last regimen is ongoing and no dose date is documented")
    if not doses:
        return Unknown("the last regimen has no documented dose date")
    latest, source = max(doses, key=lambda pair: pair[0].latest)
    span = DateSpan(max(s.earliest for s, _ in doses), latest.latest)
    return Observed(span, (Evidence(source.exposure.reference, "last dose", source.exposure.ingredient,
                                    date=latest.isoformat()),))


def _dose_span(record, t: TimedExposure, as_of: date) -> DateSpan:
    """The days ``t``'s last dose may have been: its end, or its start when it has no end (``last_dose``
    is the latest of them; the earliest day of a partial end is read from the resource's period)."""
    resource = record.resolve(t.exposure.reference) if t.exposure.end is not None else None
    end = _period(resource)[1] if resource is not None else None
    last_dose = t.last_dose
    assert last_dose is not None, "only exposures with a documented dose reach here"
    earliest = min(end.earliest, as_of) if end is not None else t.exposure.start or last_dose
    return DateSpan(min(earliest, last_dose), last_dose)


def last_regimen_start(record, as_of: date) -> Fact[date]:
    """Start day of the last anti-myeloma regimen (the one ``last_regimen_last_dose`` reads); the latest
    day it may have started when its dates are partial."""
    last = _last_regimen(record, as_of)
    if isinstance(last, Unknown):
        return last
    first = min((t for t in last.items if t.exposure.start), key=lambda t: t.start_latest or _start(t))
    day = last.start_latest
    return Observed(day, (Evidence(first.exposure.reference, "regimen start", first.exposure.ingredient, date=day.isoformat()),))


def _last_regimen(record, as_of: date) -> _Regimen | Unknown:
    """The last regimen with an anti-myeloma agent in the finest reading (steroid-only regimens,
    lymphodepletion and transplant procedures are not regimens of drugs)."""
    failed = incomplete(record, EXPOSURE_TYPES)
    if failed:
        return Unknown(failed, retrieval_failed=True)
    found = timed_exposures(record, as_of, LINE_INPUTS)
    regimens = [r for line in _lines(found, as_of, False, merge=False) for r in line.regimens if r.agents]
    if not regimens:
        return Unknown("no dated anti-myeloma regimen is documented")
    return max(regimens, key=lambda r: r.start)


# ------------------------------------------------------------------------------------ the rule


def _counts(t: TimedExposure) -> bool:
    return _is_drug(t) or _is_transplant(t) or _is_generic_car_t(t)


def _is_drug(t: TimedExposure) -> bool:
    return "anti-myeloma-agents" in t.exposure.classes


def _is_transplant(t: TimedExposure) -> bool:
    """A transplant Procedure of any type; not a stem-cell collection ("stem cell harvest for autologous
    transplant"), and not a drug record whose name mentions a transplant."""
    classes = t.exposure.classes
    return (
        t.exposure.reference.startswith("Procedure/")
        and bool(classes & TRANSPLANT_CLASSES)
        and "stem-cell-collection" not in classes
        and not _is_drug(t)
    )


def _supportive(t: TimedExposure) -> bool:
    """A steroid given for a stated supportive purpose (premedication, nausea, CRS...): no line at all."""
    return t.exposure.ingredient in STEROIDS and t.marker == "supportive"


def _is_generic_car_t(t: TimedExposure) -> bool:
    return "car-t-history" in t.exposure.classes and not _is_drug(t)


def _start(t: TimedExposure) -> date:
    """Start day of an exposure its caller kept for being dated."""
    start = t.exposure.start
    assert start is not None, "only dated exposures reach here"
    return start


def _transplant_kind(t: TimedExposure) -> str:
    return next(kind for kind in TRANSPLANT_CLASSES_ORDERED if kind in t.exposure.classes)


def _lines(found: tuple[TimedExposure, ...], as_of: date, consolidation_in_line: bool, merge: bool) -> list[_Line]:
    counted = [t for t in found if _counts(t)]
    drugs = [t for t in counted if t.exposure.start and _is_drug(t)]
    transplants = sorted((t for t in counted if t.exposure.start and _is_transplant(t)), key=_start)
    infusions = _Infusions(
        transplants=[_start(t) for t in transplants],
        car_t=sorted(t.exposure.start for t in found if t.exposure.start and t.exposure.classes & CAR_T_CLASSES),
        fludarabine=sorted(t.exposure.start for t in found if t.exposure.start and "fludarabine" in t.exposure.classes),
        as_of=as_of,
    )
    regimens = _regimens(_units(drugs, counted), merge)
    if merge:
        regimens = [r for r in regimens if r.agents]  # steroid-only regimens: only in the maximum
    regimens = [r for r in regimens if r.agents or not all(_supportive(t) for t in r.items)]
    events = sorted([(r.start, 1, r) for r in regimens] + [(_start(t), 0, t) for t in transplants],
                    key=lambda e: (e[0], e[1]))  # on one day, the transplant before the regimen
    lines: list[_Line] = []
    transplant: TimedExposure | None = None
    for day, _, event in events:
        if isinstance(event, TimedExposure):
            if not lines:
                lines.append(_Line([], []))
            lines[-1].components.append(_transplant_kind(event))
            lines[-1].transplants.append(event)
            transplant = event
            continue
        preparation = _preparation(event, infusions, merge)
        if preparation == "lymphodepletion":
            if lines:  # before any line it is nobody's line: not a line of its own
                lines[-1].components.append(preparation)
                lines[-1].prepared.extend(event.items)
            continue
        if preparation == "conditioning" and lines and lines[-1].regimens:
            lines[-1].add(event, preparation)
            continue
        phase = _phase(event, lines, transplant, consolidation_in_line, merge)
        if phase is None:
            later = infusions.next_on_or_after(infusions.transplants, day) is not None
            lines.append(_Line([], []))
            lines[-1].add(event, "induction" if later else "regimen")
            transplant = None
        else:
            lines[-1].add(event, phase)
    return lines


def _preparation(regimen: _Regimen, infusions: _Infusions, merge: bool) -> str | None:
    """``conditioning`` for a regimen preparing a transplant (melphalan/cyclophosphamide/fludarabine/
    steroids within 60 days before it, or labelled so), ``lymphodepletion`` for cyclophosphamide or
    bendamustine given with fludarabine, in the 14 days before a CAR-T infusion, or labelled so; else None.
    In the 14 days before ``as_of`` with nothing else to tell, the same drugs may be the lymphodepletion
    of the CAR-T being ordered or a last regimen: not a line in the minimum, a line in the maximum."""
    agents = regimen.agents
    if _near(infusions.transplants, regimen, 0, PRE_TRANSPLANT_DAYS, merge) and regimen.ingredients <= PREPARATIVE:
        return "conditioning"
    labelled = regimen.marker == "conditioning"
    if agents and agents <= LYMPHODEPLETING and (
        labelled
        or _near(infusions.fludarabine, regimen, FLUDARABINE_DAYS, FLUDARABINE_DAYS, merge)
        or _near(infusions.car_t, regimen, 0, LYMPHODEPLETION_DAYS, merge)
        or (merge and (infusions.as_of - regimen.start_latest).days <= LYMPHODEPLETION_DAYS)
    ):
        return "lymphodepletion"
    if labelled and (agents <= PREPARATIVE or all(t.marker == "conditioning" for t in regimen.items)):
        return "conditioning"
    return None


def _near(days: list[date], regimen: _Regimen, before: int, after: int, merge: bool) -> bool:
    """Whether one of ``days`` (sorted) lies from ``before`` days before to ``after`` days after the
    regimen's start. A partial start is a span: the minimum reading (``merge``) takes it when some
    possible start day is that near, the maximum only when every possible start day is."""
    if merge:
        return _Infusions.any_within(days, regimen.start - _days(before), regimen.start_latest + _days(after))
    return _Infusions.any_within(days, regimen.start_latest - _days(before), regimen.start + _days(after))


def _phase(regimen: _Regimen, lines: list[_Line], transplant, consolidation_in_line, merge) -> str | None:
    """The component name when the regimen belongs to the current line, else None (a new line). A phase
    stated in words decides whatever the dates; unlabelled, a regimen within 180 days after a transplant
    is maintenance when it looks like it, else consolidation or a new line (ambiguous)."""
    if not lines:
        return None
    marker = regimen.marker
    if marker == "maintenance":
        return "maintenance"
    if marker == "consolidation":
        return "consolidation" if consolidation_in_line or merge else None
    if marker == "induction":
        return None
    if transplant is None:
        return None
    # partial dates: within 180 days for some possible days in the minimum, for all of them in the maximum
    gap = regimen.start - (transplant.start_latest or transplant.exposure.start) if merge else \
        regimen.start_latest - transplant.exposure.start
    if gap.days > POST_TRANSPLANT_DAYS:
        return None
    if _maintenance_like(regimen, lines[-1].agents):
        return "maintenance"
    return "consolidation" if merge else None


def _maintenance_like(regimen: _Regimen, induction: set[str]) -> bool:
    agents = regimen.agents
    return 0 < len(agents) <= 2 and agents <= MAINTENANCE_AGENTS and (len(agents) == 1 or agents <= induction)


def _days(n: int) -> timedelta:
    return timedelta(days=n)


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
        start = min(_start(t) for t in dated)
        start_latest = min(t.start_latest or _start(t) for t in dated)
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
    undated = [t for t in timed if t.exposure.start is None and _is_drug(t) and not _supportive(t)]
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
        references=tuple(t.exposure.reference for t in items + line.prepared),  # cited, not its dates or drugs
    )


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
