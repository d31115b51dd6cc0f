"""Benchmark hook requests of three sizes, built from a sandbox patient (synthetic data only).

The base is the ``abecma-meets-all-criteria`` scenario: its patient Bundle supplies every prefetch Bundle
(complete, no ``next`` links, so an in-process call needs no FHIR I/O), and filler is added the way a long
oncology chart grows: routine labs, supportive-care medications, doses repeated on days already on the
record, comorbidities and minor procedures. Filler carries only *local* EHR codes and text (system
``https://ehr.example.org/fhir/CodeSystem/...``), so it asserts no standard code and cannot change which
criteria are met; the bench reports each case's verdict so a change would be visible.

- ``typical``: ~300 resources (~150 Observations, ~100 medication resources, ~20 Conditions, procedures,
  Coverage, Patient);
- ``large``: 5,000 Observations and 500 medication resources (~3 MB of JSON);
- ``five-orders``: the typical record with 5 draft orders (the CAR-T order, a co-signed tocilizumab order
  and three supportive-care orders);
- ``grown-<n>`` (``grown_hook``): the record grown to about n resources the way the code that reads it
  meets growth, not filler it skips: ~75 % long monitoring series of the scenario's own myeloma labs
  (serum M-protein, free light chains, ratio, marrow plasma cells: LOINC-coded, so the lab, progression
  and measurable-disease code reads every one) and ~20 % more doses of its own anti-myeloma drugs inside
  the regimens it already records (so drug identification and the lines of therapy read every one).
  The series extend back, daily, from the day before the first line of therapy (a smouldering phase
  followed for years), each at the value its code was first measured at, and the doses fall between the
  first and last recorded dose of their drug: no new rise, nadir, line or progression, so the decision
  stays the scenario's.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson

SANDBOX = Path(__file__).resolve().parents[1]
SCENARIO = "abecma-meets-all-criteria"
TOCILIZUMAB_SCENARIO = "tocilizumab-within-allowance"
AS_OF = date(2026, 11, 24)
LOCAL = "https://ehr.example.org/fhir/CodeSystem/"
SANDBOX_TAG = {"system": "https://cart-cds.example.org/fhir/CodeSystem/sandbox", "code": "cart-cds-sandbox"}

ROUTINE_LABS = (("HGB", "Hemoglobin", "g/dL", 11.2), ("WBC", "White blood cell count", "10*3/uL", 5.4),
                ("PLT", "Platelet count", "10*3/uL", 182.0), ("CREAT", "Creatinine", "mg/dL", 1.1),
                ("CA", "Calcium", "mg/dL", 9.4), ("ALB", "Albumin", "g/dL", 3.8),
                ("ALT", "Alanine aminotransferase", "U/L", 24.0), ("LDH", "Lactate dehydrogenase", "U/L", 190.0))
SUPPORTIVE_MEDS = ("acyclovir 400 mg tablet", "ondansetron 8 mg tablet", "allopurinol 300 mg tablet",
                   "pantoprazole 40 mg tablet", "zoledronic acid 4 mg/100 mL infusion",
                   "sulfamethoxazole-trimethoprim 800-160 mg tablet", "filgrastim 480 mcg/0.8 mL injection")
COMORBIDITIES = ("Essential hypertension", "Hyperlipidemia", "Type 2 diabetes mellitus without complication",
                 "Gastro-esophageal reflux disease", "Osteoporosis", "Chronic kidney disease stage 3",
                 "Peripheral neuropathy due to chemotherapy", "Anemia in neoplastic disease",
                 "Obstructive sleep apnea", "Benign prostatic hyperplasia")
MINOR_PROCEDURES = ("Bone marrow aspiration and biopsy", "Central venous catheter placement",
                    "Skeletal survey", "PET-CT whole body")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _searchset(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                      for r in resources]}


def _day(offset: int) -> str:
    return (AS_OF - timedelta(days=offset)).isoformat()


class _Filler:
    """Synthetic resources for one patient, numbered so ids never collide."""

    def __init__(self, patient_id: str):
        self.subject = {"reference": f"Patient/{patient_id}"}
        self.serial = 0

    def _id(self, kind: str) -> str:
        self.serial += 1
        return f"bench-{kind}-{self.serial}"

    def lab(self, n: int) -> dict:
        code, name, unit, value = ROUTINE_LABS[n % len(ROUTINE_LABS)]
        day = _day(7 * (n // len(ROUTINE_LABS)) + 1)
        return {"resourceType": "Observation", "id": self._id("obs"), "status": "final", "meta": {"tag": [SANDBOX_TAG]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                          "code": "laboratory", "display": "Laboratory"}]}],
                "code": {"coding": [{"system": LOCAL + "lab-component", "code": code, "display": name}], "text": name},
                "subject": self.subject, "effectiveDateTime": f"{day}T13:30:00Z", "issued": f"{day}T18:05:00Z",
                "valueQuantity": {"value": value + (n % 5) / 10, "unit": unit}}

    def supportive_medication(self, n: int, kind: str) -> dict:
        text = SUPPORTIVE_MEDS[n % len(SUPPORTIVE_MEDS)]
        concept = {"coding": [{"system": LOCAL + "medication", "code": text.split()[0].upper(), "display": text}],
                   "text": text}
        day = _day(10 * n % 1500 + 1)
        resource = {"resourceType": kind, "id": self._id(kind.lower()), "meta": {"tag": [SANDBOX_TAG]},
                    "subject": self.subject, "medicationCodeableConcept": concept}
        if kind == "MedicationRequest":
            resource.update(status="completed", intent="order", authoredOn=f"{day}T15:00:00Z",
                            dosageInstruction=[{"text": "as directed"}])
        else:
            resource.update(status="completed", effectiveDateTime=f"{day}T15:00:00Z")
        return resource

    def repeated_dose(self, given: dict) -> dict:
        """Another dose of a recorded anti-myeloma administration on the same day (same regimen)."""
        dose = copy.deepcopy(given)
        dose["id"] = self._id("dose")
        return dose

    def condition(self, n: int) -> dict:
        text = COMORBIDITIES[n % len(COMORBIDITIES)]
        return {"resourceType": "Condition", "id": self._id("cond"), "meta": {"tag": [SANDBOX_TAG]},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "active"}]},
                "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                   "code": "confirmed"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                          "code": "problem-list-item"}]}],
                "code": {"coding": [{"system": LOCAL + "problem", "code": f"P{n % len(COMORBIDITIES):03d}",
                                     "display": text}], "text": text},
                "subject": self.subject, "onsetDateTime": _day(400 + 90 * n)}

    def procedure(self, n: int) -> dict:
        text = MINOR_PROCEDURES[n % len(MINOR_PROCEDURES)]
        return {"resourceType": "Procedure", "id": self._id("proc"), "status": "completed",
                "meta": {"tag": [SANDBOX_TAG]}, "subject": self.subject,
                "code": {"coding": [{"system": LOCAL + "procedure", "code": f"PR{n % len(MINOR_PROCEDURES)}",
                                     "display": text}], "text": text},
                "performedDateTime": f"{_day(200 + 120 * n)}T10:00:00Z"}


def _base() -> tuple[dict, dict[str, list[dict]]]:
    """The scenario's prefetch hook and its patient's resources by type."""
    hook = _load(SANDBOX / "hooks" / f"{SCENARIO}-prefetch.json")
    by_type: dict[str, list[dict]] = {}
    for entry in _load(SANDBOX / "patients" / f"{SCENARIO}.json")["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return hook, by_type


def build_hook(observations: int, medications: int, conditions: int = 20, procedures: int = 5,
               extra_orders: bool = False) -> dict:
    """A complete-prefetch order-sign request whose record holds about the given resource counts."""
    hook, by_type = _base()
    patient_id = hook["context"]["patientId"]
    filler = _Filler(patient_id)
    obs = list(by_type.get("Observation", []))
    obs += [filler.lab(n) for n in range(max(0, observations - len(obs)))]
    administrations = list(by_type.get("MedicationAdministration", []))
    requests = list(by_type.get("MedicationRequest", []))
    statements = list(by_type.get("MedicationStatement", []))
    given = [a for a in administrations if a.get("status") == "completed"]
    missing = max(0, medications - len(administrations) - len(requests) - len(statements))
    repeats = [filler.repeated_dose(given[n % len(given)]) for n in range(missing * 2 // 5)] if given else []
    administrations += repeats
    kinds = ("MedicationAdministration", "MedicationRequest", "MedicationStatement")
    for n in range(missing - len(repeats)):
        target = (administrations, requests, statements)[n % 3]
        target.append(filler.supportive_medication(n, kinds[n % 3]))
    conds = list(by_type.get("Condition", []))
    conds += [filler.condition(n) for n in range(max(0, conditions - len(conds)))]
    procs = list(by_type.get("Procedure", []))
    procs += [filler.procedure(n) for n in range(max(0, procedures - len(procs)))]
    prefetch = hook["prefetch"]
    prefetch.update(observations=_searchset(obs), medicationAdministrations=_searchset(administrations),
                    medicationRequests=_searchset(requests), medicationStatements=_searchset(statements),
                    conditions=_searchset(conds), procedures=_searchset(procs),
                    coverage=_searchset(by_type.get("Coverage", [])))
    if extra_orders:
        _add_orders(hook, filler)
    return hook


def _add_orders(hook: dict, filler: _Filler) -> None:
    """Tocilizumab co-signed with the CAR-T order, plus three supportive-care draft orders: 5 in all."""
    entries = hook["context"]["draftOrders"]["entry"]
    subject = entries[0]["resource"]["subject"]
    toci_hook = _load(SANDBOX / "hooks" / f"{TOCILIZUMAB_SCENARIO}-prefetch.json")
    toci = copy.deepcopy(next(e["resource"] for e in toci_hook["context"]["draftOrders"]["entry"]
                              if "tocilizumab" in json.dumps(e["resource"].get("medicationCodeableConcept")).lower()))
    toci.update(id="bench-order-toci", subject=subject)
    toci["requester"] = entries[0]["resource"].get("requester")
    orders = [toci]
    for n in range(3):
        order = filler.supportive_medication(n, "MedicationRequest")
        order.update(id=f"bench-order-{n}", status="draft", authoredOn=f"{AS_OF.isoformat()}T20:30:00Z")
        orders.append(order)
    entries.extend({"fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000000{n}", "resource": r}
                   for n, r in enumerate(orders))


def grown_hook(resources: int) -> dict:
    """The complete-prefetch hook of the scenario with its record grown to about ``resources`` resources
    (see the module docstring)."""
    hook, by_type = _base()
    have = sum(len(v) for v in by_type.values())
    extra = max(0, resources - have)
    observations = list(by_type.get("Observation", []))
    administrations = list(by_type.get("MedicationAdministration", []))
    serial = itertools.count(1)
    observations += _monitoring_series(observations, administrations, extra * 3 // 4, serial)
    administrations += _regimen_doses(administrations, extra - (len(observations) - len(by_type["Observation"])), serial)
    hook["prefetch"].update(observations=_searchset(observations),
                            medicationAdministrations=_searchset(administrations))
    return hook


def _monitoring_series(observations: list[dict], administrations: list[dict], count: int,
                       serial: Iterator[int]) -> list[dict]:
    """``count`` copies of each lab code's first measurement, one a day going back from the day before
    the first recorded dose (round robin over the codes)."""
    first_dose = min(_when(a) for a in administrations)
    firsts: dict[str, dict] = {}
    for obs in sorted(observations, key=_when):
        firsts.setdefault(obs["code"]["coding"][0]["code"], obs)
    templates = list(firsts.values())
    grown = []
    for n in range(count):
        day = first_dose - timedelta(days=1 + n // len(templates))
        grown.append(_copy_at(templates[n % len(templates)], day, f"bench-series-{next(serial)}",
                              "effectiveDateTime", "issued"))
    return grown


def _regimen_doses(administrations: list[dict], count: int, serial: Iterator[int]) -> list[dict]:
    """``count`` more completed doses of the drugs given more than once, spread evenly between each
    drug's first and last recorded dose (round robin over the drugs)."""
    by_drug: dict[str, list[dict]] = {}
    for given in administrations:
        if given.get("status") == "completed":
            by_drug.setdefault(given["medicationCodeableConcept"]["text"], []).append(given)
    spans = [(min(doses, key=_when), _when(min(doses, key=_when)), _when(max(doses, key=_when)))
             for doses in by_drug.values() if len(doses) > 1]
    per_drug = -(-count // len(spans)) if spans else 0
    grown = []
    for n in range(count):
        template, start, end = spans[n % len(spans)]
        step = (end - start) / (per_drug + 1)
        at = start + step * (n // len(spans) + 1)
        grown.append(_copy_at(template, at, f"bench-dose-{next(serial)}", "effectiveDateTime"))
    return grown


def _when(resource: dict) -> datetime:
    return datetime.fromisoformat(resource["effectiveDateTime"].replace("Z", "+00:00"))


def _copy_at(resource: dict, when: datetime, new_id: str, *elements: str) -> dict:
    """A copy of ``resource`` with a new id and its time ``elements`` moved to ``when``."""
    copied = copy.deepcopy(resource)
    copied["id"] = new_id
    copied.update(dict.fromkeys(elements, when.strftime("%Y-%m-%dT%H:%M:%SZ")))
    return copied


GROWN_SIZES = (1000, 5000, 20000)


def cases(fhir_server: str | None = None) -> dict[str, bytes]:
    """The benchmark requests as JSON bodies: typical, large, five-orders (``fhirServer`` replaced by
    ``fhir_server`` when given)."""
    return {
        "typical": _body(build_hook(observations=150, medications=100), fhir_server),
        "large": _body(build_hook(observations=5000, medications=500, conditions=40, procedures=10), fhir_server),
        "five-orders": _body(build_hook(observations=150, medications=100, extra_orders=True), fhir_server),
    }


def grown_cases(sizes: tuple[int, ...], fhir_server: str | None = None) -> dict[int, bytes]:
    return {size: _body(grown_hook(size), fhir_server) for size in sizes}


def sandbox_complete_prefetch_hooks(fhir_server: str | None = None) -> dict[str, bytes]:
    """Every sandbox scenario's complete-prefetch hook (``<scenario>-prefetch.json``), by scenario; not
    the scenarios whose EHR failed a prefetch query (an OperationOutcome in its place: the service
    queries for it, by design)."""
    hooks = {}
    for expected in sorted((SANDBOX / "expected").glob("*.json")):
        hook = _load(SANDBOX / "hooks" / f"{expected.stem}-prefetch.json")
        if all((value or {}).get("resourceType") != "OperationOutcome" for value in hook["prefetch"].values()):
            hooks[expected.stem] = _body(hook, fhir_server)
    return hooks


def _body(hook: dict, fhir_server: str | None) -> bytes:
    if fhir_server:
        hook["fhirServer"] = fhir_server
    return orjson.dumps(hook)


def resource_count(body: bytes) -> int:
    hook = orjson.loads(body)
    return sum(len(v.get("entry", ())) if v.get("resourceType") == "Bundle" else 1
               for v in hook.get("prefetch", {}).values() if isinstance(v, dict))


def no_prefetch_hook(fhir_base: str) -> bytes:
    """The scenario's no-prefetch request pointed at ``fhir_base`` (every fact needs a fallback query)."""
    hook = _load(SANDBOX / "hooks" / f"{SCENARIO}-no-prefetch.json")
    text = json.dumps(hook).replace(hook["fhirServer"], fhir_base)
    return text.encode("utf-8")
