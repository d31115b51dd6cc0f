"""Raw FHIR JSON in, entries out: flatten Bundles, read FHIR dates, validate single resources on demand.

Why lazy: full pydantic validation with ``fhir.resources`` costs about 0.15 ms per Observation, thirty
times the JSON parse. A 5,000-Observation record must not be validated wholesale, so the record is
indexed from the raw JSON (type, id, fullUrl, patient link, status) and a fact module asks for the
validated model of just the resources it uses (``validate``), and of those only the elements facts read
(``READ_ELEMENTS``). One malformed entry is then one ``RecordIssue`` and a skipped resource, never a
failed record.

Issue details never carry patient data: they name the element paths that failed, not their values.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_mappings.facts import DateSpan, RecordIssue
from fhir_mappings.quick_validation import well_formed

MAX_BUNDLE_DEPTH = 4  # a Bundle inside a Bundle inside ... deeper than this is refused, not recursed


@dataclass(frozen=True)
class Entry:
    """One resource as received, with the ``fullUrl`` its Bundle entry gave it (if any)."""

    resource: dict
    full_url: str | None = None


def flatten(sources: Iterable[Any]) -> tuple[list[Entry], list[RecordIssue]]:
    """Every resource in ``sources`` (resources and/or Bundles of any type: searchset, collection,
    transaction, batch, ...), Bundles opened recursively. OperationOutcome entries (search warnings)
    are dropped; entries that are not a resource are reported as ``malformed`` and skipped."""
    entries: list[Entry] = []
    issues: list[RecordIssue] = []
    for position, source in enumerate(sources):
        _walk(source, None, f"source[{position}]", 0, entries, issues)
    return entries, issues


def _walk(resource: Any, full_url: str | None, where: str, depth: int, entries: list[Entry],
          issues: list[RecordIssue]) -> None:
    """Append the resources of ``resource`` to ``entries`` and what is wrong with it to ``issues``."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        issues.append(RecordIssue(full_url, "malformed", f"{where} is not a FHIR resource (no resourceType)"))
        return
    rid = resource.get("id")
    if rid is not None and not isinstance(rid, str):
        issues.append(RecordIssue(full_url, "malformed", f"{where}: id is not a string"))
        return
    kind = resource["resourceType"]
    if kind == "OperationOutcome":
        return
    if kind != "Bundle":
        entries.append(Entry(resource, full_url if isinstance(full_url, str) else None))
        return
    if depth >= MAX_BUNDLE_DEPTH:
        issues.append(RecordIssue(full_url, "malformed", f"{where}: Bundles nested deeper than {MAX_BUNDLE_DEPTH}"))
        return
    entry_list = resource.get("entry") or []
    if not isinstance(entry_list, list):
        issues.append(RecordIssue(full_url, "malformed", f"{where}: Bundle.entry is not a list"))
        return
    for index, entry in enumerate(entry_list):
        if not isinstance(entry, dict):
            issues.append(RecordIssue(None, "malformed", f"{where}.entry[{index}] is not an object"))
            continue
        if "resource" not in entry:
            continue  # a transaction-response or delete entry: nothing to read
        url = entry.get("fullUrl")
        _walk(entry["resource"], url if isinstance(url, str) else None, f"{where}.entry[{index}].resource",
              depth + 1, entries, issues)


class MalformedResource(ValueError):
    """The resource does not validate against its FHIR R4B model. ``paths`` names the failing
    elements (no values, so it is safe to log and report)."""

    def __init__(self, resource_type: str, paths: tuple[str, ...]):
        self.paths = paths
        shown = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
        super().__init__(f"{resource_type} does not validate (elements: {shown or 'unknown'})")


# What fact modules read of each resource type they validate, plus the type's required elements (a
# resource missing one is malformed whatever we read). ``name[x]`` stands for every choice type of the
# element. Only these elements are validated: a resource whose evidence is well-formed is used even when
# an element no fact reads (narrative, meta, notes, extensions) would not validate, and validation costs
# a fraction of a full model build (therapy validates every dose on the chart).
READ_ELEMENTS: dict[str, tuple[str, ...]] = {
    "Patient": ("birthDate",),
    "Observation": ("status", "code", "subject", "effective[x]", "issued", "value[x]", "interpretation",
                    "referenceRange", "specimen"),
    "Condition": ("code", "subject", "clinicalStatus", "verificationStatus", "onset[x]", "abatement[x]",
                  "recordedDate"),
    "Coverage": ("status", "beneficiary", "payor", "type", "class", "order"),
    "MedicationStatement": ("status", "subject", "medication[x]", "effective[x]", "basedOn", "partOf",
                            "category", "contained"),
    "MedicationAdministration": ("status", "subject", "medication[x]", "effective[x]", "request", "partOf",
                                 "category", "contained"),
    "MedicationRequest": ("status", "intent", "subject", "medication[x]", "authoredOn", "dosageInstruction",
                          "dispenseRequest", "requester", "reasonCode", "reasonReference", "basedOn",
                          "groupIdentifier", "category", "courseOfTherapyType", "contained"),
    "Procedure": ("status", "subject", "code", "performed[x]", "basedOn", "partOf", "category"),
}


def _element_matcher(elements: tuple[str, ...]):
    names = frozenset(e for e in elements if not e.endswith("[x]")) | {"resourceType", "id"}
    names |= {"_" + name for name in names}  # ``_birthDate``: the primitive's id/extensions
    choices = tuple(e[:-3] for e in elements if e.endswith("[x]"))

    @lru_cache(maxsize=1024)  # the element names a chart uses are few; bounded against odd input
    def is_read(key: str) -> bool:
        if key in names:
            return True
        name = key[1:] if key.startswith("_") else key
        for base in choices:
            if name.startswith(base) and name[len(base):len(base) + 1].isupper():
                return True
        return False

    return is_read


_IS_READ = {kind: _element_matcher(elements) for kind, elements in READ_ELEMENTS.items()}


def read_elements(resource: dict) -> dict:
    """``resource`` with only the elements fact modules read of its type (see ``READ_ELEMENTS``); a type
    without a read set is kept whole."""
    kind = resource.get("resourceType")
    is_read = _IS_READ.get(kind) if isinstance(kind, str) else None
    if is_read is None:
        return resource
    read = [key for key in resource if isinstance(key, str) and is_read(key)]
    if len(read) == len(resource):
        return resource  # every element is read: nothing to leave out
    return {key: resource[key] for key in read}


def validate(resource: dict) -> None:
    """Raise ``MalformedResource`` unless the elements facts read of ``resource`` (``read_elements``)
    validate against its ``fhir.resources.R4B`` model. Common shapes are accepted by the conservative
    ``quick_validation`` check without building the model; everything else is built."""
    kind = resource.get("resourceType")
    read = read_elements(resource)
    if well_formed(read):
        return
    try:
        model_class = get_fhir_model_class(kind)
    except (KeyError, ValueError, TypeError):
        raise MalformedResource(str(kind), ("resourceType",)) from None
    try:
        model_class.model_validate(read)
    except ValidationError as error:
        paths = tuple(dict.fromkeys(".".join(str(p) for p in err.get("loc", ())) for err in error.errors()))
        raise MalformedResource(str(kind), paths) from None
    except (TypeError, ValueError) as error:  # fhir.resources raises plain errors for some shapes
        raise MalformedResource(str(kind), (type(error).__name__,)) from None


# ------------------------------------------------------------------------------------ FHIR dates
#
# A FHIR date may be partial (``2026``, ``2026-11``): it names every day of that year or month, and the
# record does not say which. Every comparison of such a date with a day or a window is therefore
# three-valued, judged on the whole span: True when every day of the span is on the asked side (inside
# the window, on or before the day), False when no day of it is, None when the span straddles the
# boundary. The caller decides what None means for its criterion (usually unknown); it must never read
# None as True or as False, and must never drop a partial date silently. ``DateSpan`` itself is defined
# with the fact value types (``fhir_mappings.facts``), since facts carry spans to the policy checks.


def between(span: DateSpan, first: date, last: date) -> bool | None:
    """Whether the day ``span`` denotes lies in ``first`` .. ``last`` (both included): True when the
    whole span does, False when none of it does, None when it straddles a bound."""
    if first <= span.earliest and span.latest <= last:
        return True
    if span.latest < first or span.earliest > last:
        return False
    return None


def within(span: DateSpan, as_of: date, days: int) -> bool | None:
    """Whether ``span`` is within the ``days`` days up to and including ``as_of`` (``as_of - days`` ..
    ``as_of``: a result exactly 30 days old is within a 30-day window). Three-valued as ``between``:
    a result dated only ``2026-11`` is within 30 days of 2026-12-31, not within 30 days of 2027-02-15,
    and unknown on 2026-12-10."""
    return between(span, as_of - timedelta(days=days), as_of)


def follows_within(later: DateSpan, earlier: DateSpan, days: int) -> bool | None:
    """Whether ``later`` falls 0 .. ``days`` days after ``earlier`` (e.g. progression assessed within
    60 days following the last dose): True when it does for every day both spans allow, False when it
    does for none, None otherwise."""
    shortest = (later.earliest - earlier.latest).days
    longest = (later.latest - earlier.earliest).days
    if shortest >= 0 and longest <= days:
        return True
    if longest < 0 or shortest > days:
        return False
    return None


def on_or_before(span: DateSpan, day: date) -> bool | None:
    """Whether ``span`` is on or before ``day``: True when all of it is, False when all of it is
    after, None when it straddles ``day``."""
    return between(span, date.min, day)


_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def parse_date(value: Any) -> DateSpan | None:
    """``DateSpan`` of a FHIR date, dateTime or instant string; None when absent or not a date."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value.strip())
    if not match:
        return None
    year = int(match.group(1))
    month, day = (int(g) if g else None for g in match.groups()[1:])
    try:
        if month is None:
            return DateSpan(date(year, 1, 1), date(year, 12, 31))
        if day is None:
            return DateSpan(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))
        return DateSpan(date(year, month, day), date(year, month, day))
    except ValueError:
        return None


def effective_span(resource: dict) -> DateSpan | None:
    """When an Observation/Procedure/administration happened: effective[x] or performed[x]
    (dateTime, instant, Period start), else ``issued``."""
    for key in ("effectiveDateTime", "effectiveInstant", "performedDateTime", "occurrenceDateTime"):
        span = parse_date(resource.get(key))
        if span:
            return span
    for key in ("effectivePeriod", "performedPeriod"):
        period = resource.get(key)
        if isinstance(period, dict):
            span = parse_date(period.get("start")) or parse_date(period.get("end"))
            if span:
                return span
    return parse_date(resource.get("issued"))
