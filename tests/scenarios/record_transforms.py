"""Realistic EHR transformations of a sandbox patient record, for the record-variance (metamorphic) tests.

The same clinical record reaches the service in many shapes: another code system the value sets know,
an OID in place of a code-system URI, a drug recorded as a statement instead of an administration, a
serum M-protein in g/L, a result amended after release, Bundles split into pages or in another order,
other resources of the patient (or, by an EHR bug, of another patient) alongside. Each transformation
here is one such change, classified by what it does to the information a careful reviewer would read:

- ``PRESERVING``: the record means the same thing, so every decision (verdict and criterion statuses)
  must be the same;
- ``REMOVING``: the record says less (a preliminary or absent result, a date known only to the month or
  year, a code reduced to its text, an order where an administration was, a diagnosis no longer
  confirmed), so no decision may become ``meets-policy`` and no criterion may become ``met``.

Transformations that change the facts themselves (a refuted diagnosis, an administration marked
``not-done``, a deleted contraindication) are neither, and are not here: a changed fact may rightly
change the decision. The classification is written from FHIR semantics and the policy text, never from
what the engine does; the value sets are only used to decide which codes name the same concept.

A ``Record`` is the patient's data as the EHR holds it (the resources of a sandbox hook's prefetch) plus
the hook's context; ``hook_body`` delivers it as a prefetch, and ``FhirServerMock`` answers the
service's fallback queries from it (paged, in any page size) for the no-prefetch delivery.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from fhir_mappings.data_requirements import data_requirements
from fhir_mappings.facts import Coded
from fhir_mappings.terminology import value_sets_containing
from sandbox import catalog
from sandbox import resources as fhir
from sandbox.search import matches, operation_outcome, searchset

SANDBOX = Path(__file__).parents[2] / "sandbox"
PRESERVING, REMOVING = "preserving", "removing"
BASE = "http://127.0.0.1:8090/fhir"
AS_OF = date(2026, 11, 24)
LAB_CODES = {lab.loinc: kind for kind, lab in catalog.LABS.items()}

# HL7 OIDs of the code systems (HL7 v3 code-system registry), which some EHRs send instead of the URI.
OIDS = {
    catalog.LOINC: "urn:oid:2.16.840.1.113883.6.1",
    catalog.SNOMED: "urn:oid:2.16.840.1.113883.6.96",
    catalog.RXNORM: "urn:oid:2.16.840.1.113883.6.88",
    catalog.ICD10CM: "urn:oid:2.16.840.1.113883.6.90",
}
ICD10 = (catalog.ICD10CM, catalog.ICD10PCS)
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
CONDITION_VERIFICATION = catalog.CONDITION_VERIFICATION


# --------------------------------------------------------------------------------------------------
# The record and its delivery
# --------------------------------------------------------------------------------------------------


@dataclass
class Record:
    scenario: str
    hook: dict  # the sandbox hook without its prefetch (context with the draft orders, fhirServer)
    resources: list[dict]
    failed: frozenset[str] = frozenset()  # data-requirement keys whose query fails (HTTP 500)

    @property
    def patient_id(self) -> str:
        return self.hook["context"]["patientId"]

    def copy(self) -> Record:
        return Record(self.scenario, copy.deepcopy(self.hook), copy.deepcopy(self.resources), self.failed)

    @property
    def orders(self) -> list[dict]:
        """The draft orders being signed (``context.draftOrders``)."""
        return [entry["resource"] for entry in self.hook["context"]["draftOrders"]["entry"]]


def scenario_names() -> list[str]:
    return sorted(p.stem for p in (SANDBOX / "patients").glob("*.json"))


@cache
def load_record(scenario: str) -> Record:
    """The scenario's record as its prefetch hook carries it (the prefetch is exactly the record).
    Shared: change a ``copy()`` (``transformed`` does)."""
    hook = json.loads((SANDBOX / "hooks" / f"{scenario}-prefetch.json").read_text(encoding="utf-8"))
    resources, failed = [], set()
    for key, value in hook.pop("prefetch").items():
        if value.get("resourceType") == "OperationOutcome":
            failed.add(key)
        elif value.get("resourceType") == "Bundle":
            resources.extend(entry["resource"] for entry in value.get("entry", ()))
        else:
            resources.append(value)
    return Record(scenario, hook, resources, frozenset(failed))


def _requirement_answer(record: Record, requirement) -> dict | None:
    """What the EHR puts in the prefetch for one requirement: the read resource, or a searchset of every
    resource of the type (an EHR that ignores the code filter; other patients' resources, if the record
    holds any, included: the service must ignore them)."""
    if requirement.key in record.failed:
        return operation_outcome("exception", "prefetch query failed")
    path, _ = requirement.query(record.hook["context"])
    if requirement.is_read:
        found = [r for r in record.resources if f"{r['resourceType']}/{r.get('id')}" == path]
        return found[0] if found else None
    found = [r for r in record.resources if r["resourceType"] == requirement.resource_type]
    return searchset(BASE, found, f"{BASE}/{path}")


def hook_body(record: Record, prefetch_keys: frozenset[str] | None = None) -> bytes:
    """The order-sign request: ``prefetch_keys`` None = every key prefetched; else only those keys (the
    rest is queried on the FHIR server)."""
    hook = {**record.hook, "fhirServer": BASE}
    prefetch = {}
    for requirement in data_requirements():
        if not requirement.applies(hook["context"]):
            continue  # e.g. the user's roles when the user is a PractitionerRole: nothing to ask
        if prefetch_keys is None or requirement.key in prefetch_keys:
            prefetch[requirement.key] = _requirement_answer(record, requirement)
    if prefetch:
        hook["prefetch"] = prefetch
    return json.dumps(hook).encode()


class FhirServerMock:
    """Answers the service's GETs from ``record``: reads by id, searches by type and patient (code
    filters ignored, like a server returning more than asked), pages of ``page_size`` with ``next``
    links, HTTP 500 for the record's failed queries. (Not a dataclass: hypothesis prints the fields of
    those, and a record is long.)"""

    def __init__(self) -> None:
        self.record: Record | None = None
        self.page_size = 200

    def __call__(self, request) -> tuple[int, dict, str]:
        parts = urlsplit(request.url)
        path = parts.path[len(urlsplit(BASE).path):].strip("/")
        params = dict(parse_qsl(parts.query))
        status, body = self.answer(path, params)
        return status, {"Content-Type": "application/fhir+json"}, json.dumps(body)

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, dict]:
        record = self.record
        for requirement in data_requirements():
            if (requirement.key in record.failed and requirement.applies(record.hook["context"])
                    and requirement.query(record.hook["context"])[0] == path):
                return 500, operation_outcome("exception", "HTTP 500")
        if "/" in path:
            found = [r for r in record.resources if f"{r['resourceType']}/{r.get('id')}" == path]
            return (200, found[0]) if found else (404, operation_outcome("not-found", f"{path} is not known"))
        offset = int(params.pop("_getpagesoffset", 0))
        count = min(int(params.pop("_count", 200)), self.page_size)
        query = {k: v for k, v in params.items() if k in ("patient", "practitioner", "status")}
        found = [r for r in record.resources if matches(r, path, query)]
        nxt = None
        if offset + count < len(found):
            nxt = f"{BASE}/{path}?" + urlencode({**params, "_count": count, "_getpagesoffset": offset + count})
        return 200, searchset(BASE, found[offset:offset + count], f"{BASE}/{path}", nxt, total=len(found))


# --------------------------------------------------------------------------------------------------
# Transformations
# --------------------------------------------------------------------------------------------------


def _resources(record: Record) -> list[dict]:
    return record.resources


def _orders(record: Record) -> list[dict]:
    return record.orders


@dataclass(frozen=True)
class Transform:
    """A change of the record. ``targets`` lists the indexes, in ``of`` (the record's resources, or the
    draft orders), of what it can change (None: it changes the record as a whole); ``change`` applies it
    to one resource (or to the record)."""

    name: str
    kind: str
    change: Callable[..., None] = field(repr=False)
    targets: Callable[[Record], list[int]] | None = field(default=None, repr=False)
    of: Callable[[Record], list[dict]] = field(default=_resources, repr=False)

    def applicable(self, record: Record) -> bool:
        return self.targets is None or bool(self.targets(record))

    def apply(self, record: Record, rng: random.Random, chosen: list[int] | None = None) -> None:
        """Change ``chosen`` targets (default: all of them) of ``record`` in place."""
        if self.targets is None:
            self.change(record, rng)
            return
        items = self.of(record)
        for index in self.targets(record) if chosen is None else chosen:
            self.change(record, items[index], rng)


def _indexes(predicate: Callable[[Record, dict], bool],
             of: Callable[[Record], list[dict]] = _resources) -> Callable[[Record], list[int]]:
    def targets(record: Record) -> list[int]:
        return [i for i, r in enumerate(of(record)) if (of is _orders or _own(record, r)) and predicate(record, r)]
    return targets


def _own(record: Record, resource: dict) -> bool:
    """The Patient or a resource of this patient's clinical record (not Coverage or the prescriber)."""
    if resource["resourceType"] == "Patient":
        return resource.get("id") == record.patient_id
    holder = resource.get("subject") or {}
    return holder.get("reference") == f"Patient/{record.patient_id}"


MEDS = ("MedicationStatement", "MedicationAdministration", "MedicationRequest")


def _concepts(resource: dict) -> list[dict]:
    """The CodeableConcepts that say what a resource is about (code, the medication, a contained
    Medication's code)."""
    out = [resource[k] for k in ("code", "medicationCodeableConcept") if isinstance(resource.get(k), dict)]
    out += [c["code"] for c in resource.get("contained", ()) if isinstance(c.get("code"), dict)]
    return out


def _codings(resource: dict) -> list[dict]:
    return [c for concept in _concepts(resource) for c in concept.get("coding", ())]


def _membership(codings: list[dict]) -> frozenset[str]:
    return value_sets_containing([Coded(c.get("system"), c.get("code"), c.get("display")) for c in codings])


def _is_lab(resource: dict) -> bool:
    return resource["resourceType"] == "Observation" and any(
        c.get("system") == catalog.LOINC and c.get("code") in LAB_CODES for c in _codings(resource))


def _lab_kind(resource: dict) -> str | None:
    return next((LAB_CODES[c["code"]] for c in _codings(resource)
                 if c.get("system") == catalog.LOINC and c.get("code") in LAB_CODES), None)


# ---- codes ---------------------------------------------------------------------------------------


def _oid_systems(record, resource, rng) -> None:
    for coding in _codings(resource):
        coding["system"] = OIDS.get(coding.get("system"), coding.get("system"))


def _icd_without_dot(record, resource, rng) -> None:
    for coding in _codings(resource):
        if coding.get("system") in ICD10:
            coding["code"] = coding["code"].replace(".", "")


def _equivalence_groups() -> list[list[dict]]:
    """Codings that name the same concept in different systems (from the sandbox catalog): a drug's
    RxNorm ingredient, brand, clinical drug and HCPCS codes; a condition's ICD-10-CM and SNOMED codes; a
    procedure's CPT, SNOMED and ICD-10-PCS codes; LOINC codes of the same free-light-chain analyte."""
    groups = []
    for drug in catalog.DRUGS.values():
        group = [fhir.coding(catalog.RXNORM, code, drug.ingredient) for code in (drug.rxnorm_in, drug.rxnorm_bn) if code]
        groups.append(group + [fhir.coding(*c) for c in drug.extra_codings])
    for icd, icd_display, snomed, snomed_display in catalog.CONDITIONS.values():
        groups.append([fhir.coding(catalog.ICD10CM, icd, icd_display)]
                      + ([fhir.coding(catalog.SNOMED, snomed, snomed_display)] if snomed else []))
    groups += [[fhir.coding(*c) for c in codes] for codes in catalog.PROCEDURES.values()]
    groups.append([fhir.coding(catalog.LOINC, "36916-5"), fhir.coding(catalog.LOINC, "104544-2")])
    groups.append([fhir.coding(catalog.LOINC, "48378-4"), fhir.coding(catalog.LOINC, "104546-7")])
    return groups


EQUIVALENT = _equivalence_groups()


def _same_concept(concept: dict) -> list[dict]:
    """Single codings that say exactly what all of ``concept``'s codings say together: from the same
    equivalence group, in exactly the same value sets."""
    keys = {(c.get("system"), c.get("code")) for c in concept.get("coding", ())}
    wanted = _membership(concept.get("coding", []))
    out = []
    for group in EQUIVALENT:
        if keys & {(c["system"], c["code"]) for c in group}:
            out += [c for c in group if _membership([c]) == wanted]
    return out


def _recode_targets(record, resource) -> bool:
    return any(_membership(c.get("coding", [])) and _same_concept(c) for c in _concepts(resource))


def _recode(record, resource, rng) -> None:
    """Each coded concept carried by one equivalent coding of another system, where one exists."""
    for concept in _concepts(resource):
        if not _membership(concept.get("coding", [])):
            continue
        options = _same_concept(concept)
        if not options:
            continue
        current = {(c.get("system"), c.get("code")) for c in concept["coding"]}
        others = [c for c in options if (c["system"], c["code"]) not in current] or options
        concept["coding"] = [dict(rng.choice(others))]


def _text_only(record, resource, rng) -> None:
    """Codes dropped, the words kept: ``text``, else the first coding's display."""
    for concept in _concepts(resource):
        text = concept.get("text") or next((c.get("display") for c in concept.get("coding", ()) if c.get("display")), None)
        concept.pop("coding", None)
        if text:
            concept["text"] = text


def _coded(record, resource) -> bool:
    return resource["resourceType"] in ("Condition", "Procedure", "Observation", *MEDS) and bool(_codings(resource))


# ---- medications ---------------------------------------------------------------------------------


def _medication_of(resource: dict) -> dict:
    out = {k: resource[k] for k in ("medicationCodeableConcept", "medicationReference", "contained") if k in resource}
    return copy.deepcopy(out)


def _effective_of(resource: dict) -> dict:
    """The time of a medication resource as effective[x] (MedicationRequest: its dosage bounds)."""
    for key in ("effectiveDateTime", "effectivePeriod"):
        if key in resource:
            return {key: resource[key]}
    bounds = (((resource.get("dosageInstruction") or [{}])[0].get("timing") or {}).get("repeat") or {}).get("boundsPeriod")
    return {"effectivePeriod": bounds} if bounds else {"effectiveDateTime": resource.get("authoredOn")}


def _notes_of(resource: dict) -> list[dict]:
    notes = list(resource.get("note", ()))
    notes += [{"text": d["text"]} for d in resource.get("dosageInstruction", ()) if d.get("text")]
    return notes


def _rebuilt(resource: dict, resource_type: str, status: str, **extra) -> dict:
    out = {"resourceType": resource_type, "id": resource["id"], "meta": resource.get("meta", {}), "status": status}
    out.update(extra)
    out["subject"] = resource["subject"]
    out.update(_medication_of(resource))
    return out


def _given(record, resource) -> bool:
    """A completed record of the drug being taken or given (what a statement or administration says). A
    completed order of a CAR-T product is left alone: whether it shows an infusion is what issue 14
    class 8 decides, so moving it would not be known to keep the meaning."""
    if resource["resourceType"] == "MedicationRequest" and "car-t-products" in _membership(_codings(resource)):
        return False
    return resource["resourceType"] in MEDS and resource.get("status") == "completed"


def _move_given(record, resource, rng) -> None:
    """Completed administration <-> completed statement, or a completed order -> completed statement:
    each says the patient received the drug over the same time."""
    kind = resource["resourceType"]
    target = "MedicationAdministration" if kind == "MedicationStatement" else "MedicationStatement"
    new = _rebuilt(resource, target, "completed", **_effective_of(resource))
    notes = _notes_of(resource)
    if notes:
        new["note"] = notes
    category = resource.get("category")
    if isinstance(category, list):  # a request's categories; statements and administrations carry one (R4)
        category = category[0] if category else None
    if category:
        new["category"] = category  # the phase label ("Maintenance") is part of what the record says
    _replace(resource, new)


def _received(record, resource) -> bool:
    return resource["resourceType"] in ("MedicationStatement", "MedicationAdministration") and resource.get("status") == "completed"


def _to_order(record, resource, rng) -> None:
    """An administration or statement of use recorded as the order instead: the order does not say the
    drug was received (issue 14 class 8)."""
    status = rng.choice(("completed", "active"))
    period = _effective_of(resource)
    timing = {"repeat": {"boundsPeriod": period["effectivePeriod"]}} if "effectivePeriod" in period else {}
    start = (period.get("effectivePeriod") or {}).get("start") or period.get("effectiveDateTime")
    new = _rebuilt(resource, "MedicationRequest", status, intent="order", authoredOn=start)
    dosage = {"text": "; ".join(n["text"] for n in resource.get("note", ())) or "as directed"}
    if timing:
        dosage["timing"] = timing
    new["dosageInstruction"] = [dosage]
    _replace(resource, new)


def _status_unknown(record, resource, rng) -> None:
    resource["status"] = "unknown"  # "the authoring system does not know the current state"


def _replace(resource: dict, new: dict) -> None:
    resource.clear()
    resource.update(new)


# ---- labs ----------------------------------------------------------------------------------------

# Units a lab may report each analyte in, with the factor to the first (canonical) unit; the UCUM code
# and the unit text an EHR prints.
UNITS = {
    "spep": (("g/dL", Decimal(1)), ("g/L", Decimal("0.1")), ("mg/dL", Decimal("0.001"))),
    "kappa": (("mg/dL", Decimal(1)), ("mg/L", Decimal("0.1"))),
    "lambda": (("mg/dL", Decimal(1)), ("mg/L", Decimal("0.1"))),
    "upep24": (("mg/(24.h)", Decimal(1)), ("g/(24.h)", Decimal(1000)), ("mg/d", Decimal(1))),
}
# UCUM's own equivalent spellings (``l`` and ``L`` are both the litre) and what EHRs print.
SPELLINGS = {"g/dL": ("g/dl",), "g/L": ("g/l",), "mg/dL": ("mg/dl",), "mg/L": ("mg/l",),
             "mg/(24.h)": ("mg/(24.h)",), "{ratio}": ("1",)}


def _convertible(record, resource) -> bool:
    quantity = resource.get("valueQuantity") or {}
    return _lab_kind(resource) in UNITS and quantity.get("code") in dict(UNITS[_lab_kind(resource)])


def _convert_unit(record, resource, rng) -> None:
    """The same value in another unit of the analyte, exactly converted."""
    quantity = resource["valueQuantity"]
    units = dict(UNITS[_lab_kind(resource)])
    unit = rng.choice([u for u in units if u != quantity["code"]])
    value = Decimal(str(quantity["value"])) * units[quantity["code"]] / units[unit]
    quantity.update(value=_number(value), code=unit, unit=catalog.UNIT_TEXT.get(unit, unit))


def _number(value: Decimal) -> int | float:
    value = value.normalize()
    return int(value) if value == value.to_integral_value() else float(value)


def _respellable(record, resource) -> bool:
    return (resource.get("valueQuantity") or {}).get("code") in SPELLINGS


def _respell_unit(record, resource, rng) -> None:
    """The UCUM code written with a lower-case litre (``g/dl``: valid UCUM), unit text the same."""
    quantity = resource["valueQuantity"]
    spelled = rng.choice(SPELLINGS[quantity["code"]])
    quantity.update(code=spelled, unit=spelled)


def _final_lab(record, resource) -> bool:
    return _is_lab(resource) and resource.get("status") == "final"


def _amend(record, resource, rng) -> None:
    resource["status"] = rng.choice(("amended", "corrected"))


def _not_final(record, resource, rng) -> None:
    resource["status"] = rng.choice(("preliminary", "registered", "cancelled", "entered-in-error"))


def _data_absent(record, resource, rng) -> None:
    for key in [k for k in resource if k.startswith("value")]:
        del resource[key]
    reason = rng.choice(("error", "not-performed", "unknown"))
    resource["dataAbsentReason"] = {"coding": [fhir.coding(DATA_ABSENT, reason)]}


# ---- the order being signed --------------------------------------------------------------------

# A CAR-T dose in UCUM: 10^6 cells with or without an annotation, or 10^8 cells (factor to 10^6).
DOSE_UNITS = (("10*6", Decimal(1)), ("10*6{cells}", Decimal(1)), ("10*6{CAR+T cells}", Decimal(1)),
              ("10*8", Decimal(100)))


def _dose_of(order: dict) -> dict | None:
    for dosage in order.get("dosageInstruction", ()):
        for dose in dosage.get("doseAndRate", ()):
            quantity = dose.get("doseQuantity") or {}
            if quantity.get("code") in dict(DOSE_UNITS):
                return quantity
    return None


def _respell_dose(record, order, rng) -> None:
    """The same number of cells in another UCUM unit (10^6 with another annotation, or 10^8)."""
    quantity = _dose_of(order)
    units = dict(DOSE_UNITS)
    unit = rng.choice([u for u in units if u != quantity["code"]])
    value = Decimal(str(quantity["value"])) * units[quantity["code"]] / units[unit]
    quantity.update(value=_number(value), code=unit, unit=f"{unit.replace('*', '^')} CAR-positive T cells")


def _first_draft(record, order) -> bool:
    """The scenario's CAR-T order (the first draft order), while it is still a draft."""
    return order is record.orders[0] and order.get("status") == "draft"


def _resign_active(record, order, rng) -> None:
    """The order re-signed after an edit: already ``active``, and so also in the patient's
    MedicationRequest history (issue 14 class 8: the order being signed is not history)."""
    order["status"] = "active"
    record.resources.append(copy.deepcopy(order))


# ---- dates ---------------------------------------------------------------------------------------

DATE_KEYS = ("effectiveDateTime", "performedDateTime", "onsetDateTime", "authoredOn", "recordedDate", "issued")
PERIOD_KEYS = ("effectivePeriod", "performedPeriod")


def _dated(record, resource) -> bool:
    return any(k in resource for k in DATE_KEYS + PERIOD_KEYS) or "dosageInstruction" in resource


def _partial_dates(record, resource, rng) -> None:
    """Every date of the resource known only to the month (or year)."""
    length = rng.choice((4, 7))

    def cut(value):
        return value[:length] if isinstance(value, str) else value

    for key in DATE_KEYS:
        if key in resource:
            resource[key] = cut(resource[key])
    periods = [resource[k] for k in PERIOD_KEYS if k in resource]
    periods += [d.get("timing", {}).get("repeat", {}).get("boundsPeriod") for d in resource.get("dosageInstruction", ())]
    periods += [resource.get("dispenseRequest", {}).get("validityPeriod")]
    for period in filter(None, periods):
        for key in ("start", "end"):
            if key in period:
                period[key] = cut(period[key])


def _age_range(birth_year: int) -> tuple[int, int]:
    """Youngest and oldest age on ``AS_OF`` of someone born some day of ``birth_year``."""
    return AS_OF.year - birth_year - 1, AS_OF.year - birth_year


def _birth_year_decides(record, resource) -> bool:
    if resource["resourceType"] != "Patient" or len(resource.get("birthDate", "")) != 10:
        return False
    low, high = _age_range(int(resource["birthDate"][:4]))
    return low >= 18 or high < 18


def _birth_year_straddles(record, resource) -> bool:
    return resource["resourceType"] == "Patient" and len(resource.get("birthDate", "")) == 10 and not _birth_year_decides(record, resource)


def _birth_year(record, resource, rng) -> None:
    resource["birthDate"] = resource["birthDate"][:4]


# ---- conditions ----------------------------------------------------------------------------------


def _confirmed_condition(record, resource) -> bool:
    return resource["resourceType"] == "Condition" and "confirmed" in json.dumps(resource.get("verificationStatus"))


def _unconfirm(record, resource, rng) -> None:
    code = rng.choice(("provisional", "unconfirmed", "differential"))
    resource["verificationStatus"] = {"coding": [fhir.coding(CONDITION_VERIFICATION, code)]}


# ---- the record as a whole -----------------------------------------------------------------------


def _shuffle(record: Record, rng) -> None:
    rng.shuffle(record.resources)


def _other_patient_resources() -> list[dict]:
    """Another patient's chart, full of what would change this patient's decision: a seizure, CNS
    myeloma, Carvykti and teclistamab given, a CAR-T history code, a high M-protein, a plasma-cell
    leukemia diagnosis."""
    chart = fhir.Chart("variance-other", "epic")
    for key in ("seizure", "meningeal-myeloma", "car-t-history", "plasma-cell-leukemia"):
        fhir.condition(chart, key, "2026-06-01")
    fhir.drug_course(chart, "ciltacabtagene autoleucel", "2026-03-02", "2026-03-02", "Carvykti infusion", "g1")
    fhir.drug_course(chart, "teclistamab", "2025-04-07", "2026-01-12", "teclistamab", "g2")
    fhir.procedure(chart, "carvykti-infusion", "2026-03-02")
    fhir.observation(chart, "spep", "2026-11-20", 3.2, "g/dL")
    fhir.observation(chart, "spep", "2026-11-21", 0.0, "g/dL")
    fhir.disease_status(chart, "2026-11-20", "stable")
    return chart.resources


def _add_other_patient(record: Record, rng) -> None:
    extra = _other_patient_resources()
    for resource in extra:
        record.resources.insert(rng.randrange(len(record.resources) + 1), resource)


def _add_unrelated(record: Record, rng) -> None:
    """Resources of this patient that no criterion reads: blood counts, an unrelated history code, a
    problem written in words, a supportive drug written in words."""
    chart = fhir.Chart(record.scenario, "epic")
    ref = {"reference": f"Patient/{record.patient_id}"}
    for n, day in enumerate(("2026-10-30", "2026-11-18"), start=1):
        chart.add({
            "resourceType": "Observation", "id": f"{record.scenario}-wbc-{n}", "status": "final",
            "category": [{"coding": [fhir.coding(catalog.OBSERVATION_CATEGORY, "laboratory")]}],
            "code": {"coding": [fhir.coding(catalog.LOINC, "6690-2", "Leukocytes [#/volume] in Blood by Automated count")]},
            "subject": ref, "effectiveDateTime": f"{day}T14:00:00Z",
            "valueQuantity": {"value": 3.1 + n, "unit": "10^3/uL", "system": catalog.UCUM, "code": "10*3/uL"},
        })
    conditions = (
        {"coding": [fhir.coding(catalog.ICD10CM, "Z92.21", "Personal history of antineoplastic chemotherapy")]},
        {"text": "Essential hypertension"},
    )
    for n, code in enumerate(conditions, start=1):
        chart.add({
            "resourceType": "Condition", "id": f"{record.scenario}-other-cond-{n}",
            "clinicalStatus": {"coding": [fhir.coding(catalog.CONDITION_CLINICAL, "active")]},
            "verificationStatus": {"coding": [fhir.coding(CONDITION_VERIFICATION, "confirmed")]},
            "code": code, "subject": ref, "onsetDateTime": "2019-04-02",
        })
    chart.add({
        "resourceType": "MedicationStatement", "id": f"{record.scenario}-other-ms-1", "status": "active",
        "medicationCodeableConcept": {"text": "acyclovir 400 mg tablet (antiviral prophylaxis)"},
        "subject": ref, "effectivePeriod": {"start": "2021-03-01"},
    })
    for resource in chart.resources:
        record.resources.insert(rng.randrange(len(record.resources) + 1), resource)


TRANSFORMS = (
    # meaning-preserving
    Transform("oid-code-systems", PRESERVING, _oid_systems,
              _indexes(lambda rec, r: any(c.get("system") in OIDS for c in _codings(r)))),
    Transform("icd10-without-dot", PRESERVING, _icd_without_dot,
              _indexes(lambda rec, r: any(c.get("system") in ICD10 and "." in c.get("code", "") for c in _codings(r)))),
    Transform("recode-equivalent", PRESERVING, _recode, _indexes(_recode_targets)),
    Transform("move-given-drug", PRESERVING, _move_given, _indexes(_given)),
    Transform("convert-unit", PRESERVING, _convert_unit, _indexes(_convertible)),
    Transform("ucum-spelling", PRESERVING, _respell_unit, _indexes(_respellable)),
    Transform("amended-result", PRESERVING, _amend, _indexes(_final_lab)),
    Transform("birth-year-decides", PRESERVING, _birth_year, _indexes(_birth_year_decides)),
    Transform("reorder-entries", PRESERVING, _shuffle),
    Transform("order-recoded", PRESERVING, _recode, _indexes(_recode_targets, _orders), _orders),
    Transform("order-resigned-active", PRESERVING, _resign_active, _indexes(_first_draft, _orders), _orders),
    Transform("order-dose-unit", PRESERVING, _respell_dose, _indexes(lambda rec, o: _dose_of(o) is not None, _orders),
              _orders),
    Transform("other-patient-resources", PRESERVING, _add_other_patient),
    Transform("unrelated-resources", PRESERVING, _add_unrelated),
    # information-removing
    Transform("text-only", REMOVING, _text_only, _indexes(_coded)),
    Transform("result-not-final", REMOVING, _not_final, _indexes(lambda rec, r: _is_lab(r))),
    Transform("data-absent", REMOVING, _data_absent, _indexes(lambda rec, r: _is_lab(r))),
    Transform("partial-dates", REMOVING, _partial_dates, _indexes(_dated)),
    Transform("birth-year-straddles", REMOVING, _birth_year, _indexes(_birth_year_straddles)),
    Transform("given-to-order", REMOVING, _to_order, _indexes(_received)),
    Transform("medication-status-unknown", REMOVING, _status_unknown, _indexes(_received)),
    Transform("diagnosis-unconfirmed", REMOVING, _unconfirm, _indexes(_confirmed_condition)),
)
BY_NAME = {t.name: t for t in TRANSFORMS}


Steps = list[tuple[str, list[int] | None]]  # (transformation name, chosen targets or None for all)


def transformed(record: Record, steps: Steps, seed: int = 0) -> Record:
    """A copy of ``record`` with each step applied in turn."""
    out = record.copy()
    rng = random.Random(seed)
    for name, chosen in steps:
        BY_NAME[name].apply(out, rng, chosen)
    return out


def kind_of(steps: Steps) -> str:
    return PRESERVING if all(BY_NAME[name].kind == PRESERVING for name, _ in steps) else REMOVING
