"""Anti-myeloma therapy history: drug exposures, transplant and CAR-T procedures, concurrent orders.

Where therapy shows up in an R4 record, and what counts:
- ``MedicationStatement`` (active, completed, stopped), ``MedicationAdministration`` (completed, stopped,
  in-progress: the drug was given) and ``MedicationRequest`` (active, completed, stopped; intents
  ``proposal``/``plan``/``option`` are not treatment). Drafts, cancelled and entered-in-error records are
  not exposures.
- ``Procedure`` (completed, in-progress, stopped) for autologous HSCT and CAR-T infusion, and the CAR-T
  history codes on a ``Condition`` (Z92.850) or ``Procedure`` (ICD-10-PCS XW033*/XW043*, CPT 38228).

A drug is identified by any coding in any position (RxNorm IN, PIN, MIN, SCD, SBD, BN or pack, rolled up
to its ingredient by the static value-set data), by a contained or referenced Medication, or by its text
(ingredient or brand name). Dates come from ``effective[x]``, ``performed[x]``, the dosage
``boundsPeriod``, else ``authoredOn``; partial dates keep their uncertainty (``TimedExposure``) so the
line-of-therapy count can widen instead of guessing.

Completeness: a fact that needs a resource type whose retrieval was not complete is
``Unknown(retrieval_failed=True)`` unless the data present already decides it (see each function).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Iterable

from fhir_mappings.facts import Coded, Evidence, Exposure, Fact, Observed, Unknown
from fhir_mappings.orders import ordered_product, product_identity
from fhir_mappings.parsing import DateSpan, parse_date
from fhir_mappings.patient_record import parse_reference
from fhir_mappings.terminology import (
    codings_of,
    coding_key,
    value_set,
    value_set_files,
    value_sets_containing,
    value_sets_named_in,
)

MEDICATION_TYPES = ("MedicationStatement", "MedicationAdministration", "MedicationRequest")
EXPOSURE_TYPES = MEDICATION_TYPES + ("Procedure",)
HISTORY_TYPES = EXPOSURE_TYPES + ("Condition",)
USABLE_STATUS = {
    "MedicationStatement": frozenset({"active", "completed", "stopped"}),
    "MedicationAdministration": frozenset({"completed", "stopped", "in-progress"}),
    "MedicationRequest": frozenset({"active", "completed", "stopped"}),
    "Procedure": frozenset({"completed", "in-progress", "stopped"}),
}
NOT_TREATMENT_INTENTS = frozenset({"proposal", "plan", "option"})

CAR_T_PRODUCTS = (
    "idecabtagene-vicleucel",
    "ciltacabtagene-autoleucel",
    "anitocabtagene-autoleucel",
    "tisagenlecleucel",
    "axicabtagene-ciloleucel",
    "brexucabtagene-autoleucel",
    "lisocabtagene-maraleucel",
    "obecabtagene-autoleucel",
)
# Every class an exposure is labelled with (``Exposure.classes`` holds the ids that match).
CLASS_IDS = (
    "anti-myeloma-agents",
    "imid",
    "proteasome-inhibitor",
    "anti-cd38",
    "anti-bcma",
    "car-t-products",
    "car-t-history",
    "autologous-hsct",
    "allogeneic-hsct",
    "hsct-type-not-stated",
    "stem-cell-collection",
    "fludarabine",
    "tocilizumab",
) + CAR_T_PRODUCTS
# What ``exposures`` reports: anti-myeloma drugs, any CAR-T product or infusion, autologous HSCT.
TRACKED = ("anti-myeloma-agents", "car-t-products", "car-t-history", "autologous-hsct")
# Phase words (``_marker``): the phase a regimen belongs to, said in words by the EHR. ``conditioning``
# covers every step that prepares a cell infusion: transplant conditioning, lymphodepletion before CAR-T,
# stem-cell mobilisation and collection ("maintenance dose" is a pharmacological phrase, not a phase);
# ``supportive`` a purpose that is not treating the myeloma.
MARKERS = {
    "maintenance": re.compile(r"\bmaintenance\b(?!\s+dos)"),
    "consolidation": re.compile(r"\bconsolidat"),
    "induction": re.compile(r"(?<!post-)(?<!post )(?<!after )(?<!following )induction\b"),  # not "post-induction"
    "conditioning": re.compile(
        r"\bconditioning\b|lympho-?\s?deplet|\bmobili[sz]|\bharvest|\bapheresis\b|stem[- ]cell collection"),
    # a supportive purpose (of a steroid given alone): premedication, antiemesis, CRS/ICANS, prophylaxis
    "supportive": re.compile(
        r"premedicat|\bpre-?med\b|antiemet|\bnausea|\bvomiting|cytokine release|\bcrs\b|\bicans\b|neurotoxicity"
        r"|infusion[- ]related reaction|infusion reaction|prophyla"),
}


@dataclass(frozen=True)
class TimedExposure:
    """An exposure with what the line-of-therapy rules need beyond ``Exposure``: the latest possible start
    (partial dates), the last documented dose day, whether it is still running without an end, and the
    phase (a ``MARKERS`` key) stated in words by the resource, its request or its CarePlan."""

    exposure: Exposure
    start_latest: date | None
    last_dose: date | None
    ongoing: bool
    marker: str | None = None


# ------------------------------------------------------------------------------------ public facts


def exposures(record, as_of: date) -> Fact[tuple[Exposure, ...]]:
    """Anti-myeloma drug exposures, CAR-T products and infusions and autologous HSCT started on or before
    ``as_of`` (or undated). Unknown when a needed resource type was not retrieved completely."""
    timed = timed_exposures(record, as_of)
    found = tuple(t.exposure for t in timed)
    failed = incomplete(record, EXPOSURE_TYPES)
    if failed:
        return Unknown(failed, retrieval_failed=True, evidence=_evidence(found))
    return Observed(found, _evidence(found))


def prior_exposures(record, value_sets: tuple[str, ...], as_of: date) -> Fact[tuple[Exposure, ...]]:
    """Exposures (medications, procedures, history Conditions) in any of ``value_sets``, on or before
    ``as_of``. With an incomplete retrieval the partial data decides only when it already shows every
    requested value set; otherwise the fact is unknown (with what was found as evidence)."""
    wanted = tuple(value_sets)
    found = tuple(
        t.exposure for t in _collect(record, as_of, wanted, HISTORY_TYPES) if t.exposure.classes & set(wanted)
    )
    failed = incomplete(record, HISTORY_TYPES)
    if failed:
        shown = set().union(*(e.classes for e in found)) if found else set()
        if not set(wanted) <= shown:
            return Unknown(failed, retrieval_failed=True, evidence=_evidence(found))
    return Observed(found, _evidence(found))


def concurrent_requests(
    record, value_sets: tuple[str, ...], order: dict, draft_orders: tuple[dict, ...]
) -> Fact[tuple[Exposure, ...]]:
    """Other orders for products in ``value_sets``: the other draft orders of the same hook request and the
    patient's active MedicationRequests/ServiceRequests, excluding ``order`` itself. A match found in a
    partial retrieval decides; no match in a partial retrieval is unknown."""
    wanted = tuple(value_sets)
    asked = tuple(dict.fromkeys(wanted + CLASS_IDS))  # an exposure is labelled with every class it is in
    own = ordered_product(order).reference if isinstance(order, dict) and order.get("id") else None
    found: list[Exposure] = []
    candidates = [(o, "draft") for o in draft_orders if isinstance(o, dict) and o is not order]
    for kind in ("MedicationRequest", "ServiceRequest"):
        candidates += [(r, "record") for r in record.of_type(kind) if r.get("status") == "active"]
    seen: set[str] = set()
    for resource, origin in candidates:
        product = ordered_product(resource, _resolver(record, resource))
        if product.reference == own or product.reference in seen:
            continue  # the order itself, or a draft also present in the record
        if origin == "record" and resource.get("intent") in NOT_TREATMENT_INTENTS:
            continue
        drug = _drug(record, product.codings, product.names)
        classes = drug.classes(asked)
        if not classes & set(wanted):
            continue
        if resource.get("id"):
            seen.add(product.reference)
        start = parse_date(resource.get("authoredOn"))
        found.append(Exposure(product.reference, drug.ingredient, classes, start.earliest if start else None, None))
    failed = incomplete(record, ("MedicationRequest",))
    if failed and not found:
        return Unknown(failed, retrieval_failed=True)
    return Observed(tuple(found), _evidence(found))


# ------------------------------------------------------------------------------ identification


class _Drug:
    """One distinct product (codings and names): its ingredient, and the value sets it belongs to (a
    coding in the value set, or a name holding one of its text terms), looked up once for all value sets."""

    def __init__(self, codings: tuple[Coded, ...], names: tuple[str, ...]):
        self.ingredient = _ingredient(codings, names)
        self._member = value_sets_containing(codings).union(*(value_sets_named_in(name.lower()) for name in names))
        self._classes: dict[tuple[str, ...], frozenset[str]] = {}

    def classes(self, asked: tuple[str, ...]) -> frozenset[str]:
        """The value sets of ``asked`` this product belongs to (an unknown value set id is a KeyError)."""
        if asked not in self._classes:
            for vs in asked:
                value_set(vs)  # an unknown id fails here as it does when the value set itself is asked
            self._classes[asked] = self._member.intersection(asked)
        return self._classes[asked]


@cache
def _ingredient_index() -> tuple[dict[tuple[str, str], str], tuple[tuple[str, str], ...]]:
    """(code -> ingredient, (term, ingredient) longest term first) from the value-set files whose codes
    carry an ``ingredient`` (the static RxNorm roll-up)."""
    by_code: dict[tuple[str, str], str] = {}
    terms: dict[str, str] = {}
    for _, data in value_set_files():
        for code in data.get("codes", ()):
            if code.get("ingredient"):
                by_code[coding_key(code["system"], code["code"])] = code["ingredient"]
        for ingredient, names in (data.get("ingredients") or {}).items():
            for name in names:
                terms.setdefault(name.lower(), ingredient)
    ordered = tuple(sorted(terms.items(), key=lambda item: -len(item[0])))
    return by_code, ordered


def _ingredient(codings: tuple[Coded, ...], names: tuple[str, ...]) -> str:
    """The ingredient of a product's codings (the static roll-up), else the one its names hold (longest
    term first), else its first name, else its first code."""
    by_code, terms = _ingredient_index()
    for coding in codings:
        hit = by_code.get(coding_key(coding.system, coding.code))  # an RxNorm code sent with its OID too
        if hit:
            return hit
    for name in names:
        lowered = name.lower()
        for term, ingredient in terms:
            if term in lowered:
                return ingredient
    if names:
        return names[0].lower()
    return next((c.code for c in codings if c.code), "unnamed")


# ------------------------------------------------------------------------------ collection


def timed_exposures(record, as_of: date, wanted: tuple[str, ...] = TRACKED) -> tuple[TimedExposure, ...]:
    """Every exposure in the value sets ``wanted`` (default ``TRACKED``) with timing detail, started on or
    before ``as_of`` or undated."""
    return _collect(record, as_of, wanted, EXPOSURE_TYPES)


def _collect(record, as_of: date, wanted: tuple[str, ...], kinds: tuple[str, ...]) -> tuple[TimedExposure, ...]:
    """Memoised per record: the engine asks for the same exposures many times per hook."""
    return record.memo(("therapy.collect", as_of, wanted, kinds), lambda: _collect_now(record, as_of, wanted, kinds))


def _collect_now(record, as_of: date, wanted: tuple[str, ...], kinds: tuple[str, ...]) -> tuple[TimedExposure, ...]:
    extra = tuple(vs for vs in dict.fromkeys(wanted) if vs not in CLASS_IDS)  # policies name CLASS_IDS so far
    wanted_set = frozenset(wanted)
    identified = _identified(record)
    out: list[TimedExposure] = []
    for kind in kinds:
        for resource, ingredient, classes in identified.get(kind, ()):
            if extra:
                classes = classes | _drug_identity(record, resource, extra)[1]
            if not classes & wanted_set or not record.well_formed(resource):
                continue
            timed = _timed(record, resource, (ingredient, classes), as_of)
            if timed is not None:
                out.append(timed)
    return tuple(out)


def _identified(record) -> dict[str, list[tuple[dict, str, frozenset[str]]]]:
    """Per resource type, every usable therapy-history resource with its product identified against all
    ``CLASS_IDS`` (ingredient, classes), in record order: done once per record, since the engine collects
    exposures for several value sets and a chart repeats the same few drugs over many resources."""

    def identify_all():
        out: dict[str, list[tuple[dict, str, frozenset[str]]]] = {}
        for kind in HISTORY_TYPES:
            for resource in record.of_type(kind):
                if _usable(resource):
                    out.setdefault(kind, []).append((resource, *_drug_identity(record, resource, CLASS_IDS)))
        return out

    return record.memo("therapy.identified", identify_all)


def _drug_identity(record, resource: dict, asked: tuple[str, ...]) -> tuple[str, frozenset[str]]:
    """(ingredient, the value sets of ``asked`` it belongs to) of the resource's product; memberships and
    ingredient are worked out once per distinct drug (codings and names) of the record."""
    drug = _drug(record, *product_identity(resource, _resolver(record, resource)))
    return drug.ingredient, drug.classes(asked)


def _drug(record, codings: tuple[Coded, ...], names: tuple[str, ...]) -> _Drug:
    """The record's one ``_Drug`` for these codings and names: a chart repeats the same few drugs."""
    return record.memo(("therapy.drug", codings, names), lambda: _Drug(codings, names))


def _usable(resource: dict) -> bool:
    kind = resource.get("resourceType")
    if kind in USABLE_STATUS and resource.get("status") not in USABLE_STATUS[kind]:
        return False
    return not (kind == "MedicationRequest" and resource.get("intent") in NOT_TREATMENT_INTENTS)


def _timed(record, resource: dict, identity: tuple[str, frozenset[str]], as_of: date) -> TimedExposure | None:
    timing = record.memo(("therapy.timing", id(resource), as_of), lambda: _timing(record, resource, as_of))
    if timing is None:
        return None
    start, start_latest, end_day, last_dose, ongoing, group, marker = timing
    exposure = Exposure(
        reference=record.reference_of(resource),
        ingredient=identity[0],
        classes=identity[1],
        start=start,
        end=end_day,
        group=group,
    )
    return TimedExposure(exposure, start_latest, last_dose, ongoing, marker)


def _timing(record, resource: dict, as_of: date) -> tuple | None:
    """When and how the resource's exposure happened, whatever drug classes are asked: (start, latest
    possible start, end, last dose day, ongoing, regimen key, phase marker); None when it starts after
    ``as_of`` (e.g. a future-dated active order)."""
    start, end = _period(resource)
    if start is not None and start.earliest > as_of:
        return None
    end_day = min(end.latest, as_of) if end is not None else None
    kind = resource["resourceType"]
    status = resource.get("status")
    given = kind in ("MedicationAdministration", "Procedure") or (kind == "MedicationStatement" and status != "active")
    last_dose = end_day if end_day else (start.latest if start and given else None)
    ongoing = status in ("active", "in-progress") and end is None and kind != "Procedure"
    group, marker = _grouping(record, resource)
    return (start.earliest if start else None, start.latest if start else None, end_day, last_dose, ongoing,
            group, marker)


def _period(resource: dict) -> tuple[DateSpan | None, DateSpan | None]:
    """(start, end) of an exposure: a point in time is both its start and end."""
    for key in ("effectiveDateTime", "performedDateTime", "onsetDateTime"):
        span = parse_date(resource.get(key))
        if span:
            return span, span
    for key in ("effectivePeriod", "performedPeriod", "onsetPeriod"):
        period = resource.get(key)
        if isinstance(period, dict):
            start, end = parse_date(period.get("start")), parse_date(period.get("end"))
            if start or end:
                return start or end, end
    for dosage in resource.get("dosageInstruction") or ():
        timing = dosage.get("timing") if isinstance(dosage, dict) else None
        repeat = timing.get("repeat") if isinstance(timing, dict) else None
        bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
        if isinstance(bounds, dict) and parse_date(bounds.get("start")):
            return parse_date(bounds.get("start")), parse_date(bounds.get("end"))
    return parse_date(resource.get("authoredOn")), None


def _grouping(record, resource: dict) -> tuple[str | None, str | None]:
    """(explicit regimen key, phase marker). The key is the nearest CarePlan/RequestGroup reached through
    ``basedOn``/``partOf`` (an administration first goes to its ``request``), climbing through grouping
    requests; else the last grouping request reached; else ``groupIdentifier``."""
    marker = _marker(resource)
    current = resource
    if resource.get("resourceType") == "MedicationAdministration":
        request = record.resolve(resource.get("request"), context=resource)
        if request is not None:
            current, marker = request, marker or _marker(request)
    key = None
    for _ in range(5):  # bounded: references may form cycles in hostile input
        link = _group_link(record, current)
        if link is None:
            break
        key, target = link
        if target is None:
            break
        marker = marker or _marker(target)
        if target.get("resourceType") in PLAN_TYPES:
            break
        current = target
    if key is None:
        ident = current.get("groupIdentifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            key = f"groupIdentifier:{ident.get('system', '')}|{ident['value']}"
    return key, marker


PLAN_TYPES = ("CarePlan", "RequestGroup")
GROUPING_TYPES = PLAN_TYPES + ("ServiceRequest", "MedicationRequest")


def _group_link(record, resource: dict) -> tuple[str, dict | None] | None:
    """(normalised reference, resolved target or None) of the first basedOn/partOf pointing at a plan or
    a request."""
    for link in list(resource.get("basedOn") or ()) + list(resource.get("partOf") or ()):
        target = record.resolve(link, context=resource)
        if target is not None:
            if target.get("resourceType") in GROUPING_TYPES:
                return record.reference_of(target), target
            continue
        ref = link.get("reference") if isinstance(link, dict) else None
        parsed = parse_reference(ref) if isinstance(ref, str) else None
        if parsed and parsed[0] in GROUPING_TYPES:
            return f"{parsed[0]}/{parsed[1]}", None
    return None


def _marker(resource: dict) -> str | None:
    """The phase (a ``MARKERS`` key) the resource states in words: its title, description, category (a list,
    or one CodeableConcept as in MedicationStatement), course of therapy, reasons, notes, dosage text, the
    text of its drug or procedure, and its narrative. None when it names no phase, or names several
    ("induction, then maintenance after ASCT"): an unclear label leaves the decision to the dates."""
    lowered = " ".join(_phase_texts(resource)).lower()
    found = [phase for phase, pattern in MARKERS.items() if pattern.search(lowered)]
    return found[0] if len(found) == 1 else None


def _phase_texts(resource: dict) -> list[str]:
    texts = [resource.get(key) for key in ("title", "description")]
    category = resource.get("category")
    concepts = [category] if isinstance(category, dict) else list(category) if isinstance(category, list) else []
    concepts += [resource.get(key) for key in ("courseOfTherapyType", "medicationCodeableConcept", "code")]
    concepts += _listed(resource.get("reasonCode"))
    for concept in concepts:
        if isinstance(concept, dict):
            texts.append(concept.get("text"))
            texts.extend(c.get("display") for c in codings_of(concept))
    for key in ("note", "reasonReference", "dosageInstruction", "dosage"):
        items = [item for item in _listed(resource.get(key)) if isinstance(item, dict)]
        texts.extend(item.get("text") or item.get("display") for item in items)
    narrative = resource.get("text")
    if isinstance(narrative, dict) and isinstance(narrative.get("div"), str):
        texts.append(re.sub(r"<[^>]*>", " ", narrative["div"]))
    return [t for t in texts if isinstance(t, str)]


def _listed(value) -> list:
    """An element as a list: R4 has one object for some (``MedicationAdministration.dosage``)."""
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []


# ------------------------------------------------------------------------------ shared helpers


def incomplete(record, kinds: Iterable[str]) -> str | None:
    """A retrieval reason naming the resource types not obtained completely, or None when all were."""
    failed = []
    for kind in kinds:
        outcome = record.retrieval(kind)
        if not outcome.usable_in_full:
            failed.append(f"{kind} {outcome.state.value}" + (f" ({outcome.reason})" if outcome.reason else ""))
    return ("not retrieved completely: " + ", ".join(failed)) if failed else None


def _resolver(record, resource: dict):
    return lambda reference: record.resolve(reference, context=resource)


def _evidence(found: Iterable[Exposure]) -> tuple[Evidence, ...]:
    return tuple(
        Evidence(e.reference, "exposure", e.ingredient, date=e.start.isoformat() if e.start else None) for e in found
    )
