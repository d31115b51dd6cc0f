"""Generate the committed sandbox files from ``sandbox.scenarios``: ``python -m sandbox.build [--check]``.

For each scenario it writes

- ``patients/<scenario>.json``: a FHIR R4 transaction Bundle of ``PUT Type/id`` entries (loadable on HAPI);
- ``hooks/<scenario>-prefetch.json`` and ``-no-prefetch.json`` (plus ``-partial-prefetch.json`` and
  ``-paginated-prefetch.json`` for some): CDS Hooks 2.0 order-sign requests whose prefetch values are
  exactly what the data-requirement queries return from the patient bundle;
- ``recorded/replay/<scenario>.json``: the responses to the fallback queries the service makes for the
  no-prefetch hook (format in ``sandbox.recorded``), with HAPI-style paging and recorded errors;
- ``expected/<scenario>.json``: the decision the scenario must produce (hand-written in ``scenarios``).

``--check`` regenerates in memory and fails when a committed file differs (the tests run the same check).
"""

from __future__ import annotations

import copy
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from fhir_mappings.data_requirements import data_requirements
from sandbox import recorded
from sandbox import resources as fhir
from sandbox.catalog import SANDBOX_TAG
from sandbox.recorded import SANDBOX
from sandbox.scenarios import AS_OF, PRODUCTS, SCENARIOS, Flc, Lab, Proc, Scenario
from sandbox.search import operation_outcome, search, searchset, url

REPLAY_BASE = "http://127.0.0.1:8090/fhir"
PAGE_SIZE = 3  # page size of the paginated scenarios' Observation search (recorded and prefetch)
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://cart-cds.example.org/sandbox")
PARTIAL_KEYS = ("patient", "coverage", "user")
FAILURE_TEXT = {
    500: "HAPI-0389: Failed to call access method: java.lang.IllegalStateException",
    503: "Service temporarily unavailable",
}


@dataclass
class Built:
    """A scenario materialised as FHIR: the chart (stored resources) and the draft orders."""

    scenario: Scenario
    chart: fhir.Chart
    user_id: str
    encounter_id: str
    orders: list[dict]

    @property
    def context(self) -> dict[str, str]:
        return {"patientId": self.chart.patient_id, "userId": self.user_id, "encounterId": self.encounter_id}


# --------------------------------------------------------------------------------------------------
# Scenario -> FHIR resources
# --------------------------------------------------------------------------------------------------


def materialise(sc: Scenario) -> Built:
    chart = fhir.Chart(sc.name, sc.style)
    fhir.patient(chart, sc.given, sc.gender, sc.birth_date)
    fhir.coverage(chart, sc.line_of_business)
    user_id = fhir.prescriber(chart, sc.specialty)
    encounter_id = fhir.encounter(chart, AS_OF.isoformat())
    reason = None
    for dx in sc.diagnoses:
        ref = fhir.condition(chart, dx.key, dx.onset, dx.clinical_status)
        reason = ref if dx.reason_for_order else reason
    for n, event in enumerate(sc.history, start=1):
        if isinstance(event, Proc):
            fhir.procedure(chart, event.key, event.day)
        else:
            for ingredient in event.drugs:
                fhir.drug_course(chart, ingredient, event.start, event.end, event.label, f"{sc.name}-rx{n}",
                                 event.phase)
    for lab in sc.labs:
        _lab(chart, lab)
    for ingredient in sc.service_requests:
        fhir.car_t_service_request(chart, ingredient, "2026-11-20", user_id)
    orders = _orders(sc, chart, user_id, reason)
    return Built(sc, chart, user_id, encounter_id, orders)


def _flc(chart: fhir.Chart, lab: Flc) -> None:
    for kind, value in (("kappa", lab.kappa), ("lambda", lab.lambda_)):
        status = lab.status if value is not None else "registered"
        fhir.observation(chart, kind, lab.day, value, lab.unit, status, lab.comparator if kind == "kappa" else None)
    low, high = 0.26, 1.65
    reference = [{"low": {"value": low}, "high": {"value": high}, "text": "0.26-1.65"}]
    if lab.kappa is None or lab.lambda_ is None:
        fhir.observation(chart, "ratio", lab.day, None, "{ratio}", "registered", referenceRange=reference)
        return
    ratio = round(lab.kappa / lab.lambda_, 3)
    flag = "H" if ratio > high else "L" if ratio < low else "N"
    fhir.observation(chart, "ratio", lab.day, ratio, "{ratio}", lab.status, lab.comparator,
                     referenceRange=reference, interpretation=flag)


def _lab(chart: fhir.Chart, lab: Lab | Flc) -> None:
    if isinstance(lab, Flc):
        _flc(chart, lab)
    elif lab.kind == "status":
        fhir.disease_status(chart, lab.day, lab.value)
    else:
        obs = fhir.observation(chart, lab.kind, lab.day, lab.value, lab.unit, lab.status, lab.comparator,
                               lab.absent, note=lab.note)
        if lab.kind == "upep24" and lab.unit == "mg/dL":  # a spot sample mis-filed under the 24 h code
            obs["specimen"] = {"display": "Urine, random (spot) sample"}
            obs["note"] = [{"text": "Random urine; 24-hour collection not received."}]


def _orders(sc: Scenario, chart: fhir.Chart, user_id: str, reason: str | None) -> list[dict]:
    day = AS_OF.isoformat()
    product = PRODUCTS[sc.product]["ingredient"]
    orders = [fhir.car_t_order(chart, product, day, user_id, reason, sc.dose, status=sc.order_status)]
    if sc.order_in_history:
        chart.add(copy.deepcopy(orders[0]))
    if sc.concurrent_product:
        dose = fhir.CellDoseSpec(60)  # Carvykti: 0.75 x10^6 cells/kg for an 80 kg patient
        orders.append(fhir.car_t_order(chart, sc.concurrent_product, day, user_id, reason, dose, suffix="cart2"))
    if sc.tocilizumab:
        orders.append(fhir.tocilizumab_order(chart, sc.tocilizumab, day, user_id))
    return orders


# --------------------------------------------------------------------------------------------------
# FHIR resources -> files
# --------------------------------------------------------------------------------------------------


def patient_bundle(built: Built) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "meta": {"tag": [dict(SANDBOX_TAG)]},
        "entry": [
            {
                "fullUrl": f"{r['resourceType']}/{r['id']}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in built.chart.resources
        ],
    }


def _query_answer(built: Built, key: str, base: str, paginate: bool) -> tuple[int, dict, list[tuple[str, dict]]]:
    """(status, body, extra pages) of the fallback query for ``key``; extra pages are (key, body).
    ``paginate``: answer the Observation search in HAPI-style pages (first page + ``next``)."""
    requirement = next(r for r in data_requirements() if r.key == key)
    path, params = requirement.query(built.context)
    if key in built.scenario.failures:
        status = built.scenario.failures[key]
        return status, operation_outcome("exception", FAILURE_TEXT.get(status, f"HTTP {status}")), []
    stored = built.chart.resources
    if requirement.is_read:
        rtype, rid = path.split("/")
        found = [r for r in stored if r["resourceType"] == rtype and r["id"] == rid]
        if not found:
            return 404, operation_outcome("not-found", f"HAPI-2001: Resource {path} is not known"), []
        return 200, found[0], []
    matched = search(stored, path, params)
    self_url = url(base, path, params)
    if key == "observations" and paginate and len(matched) > PAGE_SIZE:
        return 200, *_hapi_pages(built, base, self_url, matched)
    return 200, searchset(base, matched, self_url), []


def _hapi_pages(built: Built, base: str, self_url: str, matched: list[dict]) -> tuple[dict, list[tuple[str, dict]]]:
    """Page ``matched`` the way HAPI does: ``next`` links at the server base with ``_getpages``."""
    token = str(uuid.uuid5(NAMESPACE, f"{built.scenario.name}/observations"))

    def page_params(offset: int) -> list[tuple[str, str]]:
        return [("_getpages", token), ("_getpagesoffset", str(offset)), ("_count", str(PAGE_SIZE)),
                ("_bundletype", "searchset")]

    def page_url(offset: int) -> str:
        return url(base, "", page_params(offset)).replace(f"{base}/?", f"{base}?")

    pages = []
    for offset in range(0, len(matched), PAGE_SIZE):
        nxt = offset + PAGE_SIZE
        body = searchset(
            base,
            matched[offset:nxt],
            self_url if offset == 0 else page_url(offset),
            page_url(nxt) if nxt < len(matched) else None,
            total=len(matched),
        )
        pages.append((recorded.request_key("GET", "", page_params(offset)), body))
    return pages[0][1], pages[1:]


def recorded_responses(built: Built, base: str = REPLAY_BASE) -> dict:
    responses: dict[str, dict] = {}
    for requirement in data_requirements():
        if not requirement.applies(built.context):
            continue
        path, params = requirement.query(built.context)
        paginate = "paginated" in built.scenario.variants  # the server pages our own queries too
        status, body, extra = _query_answer(built, requirement.key, base, paginate)
        responses[recorded.request_key("GET", path, params)] = {"status": status, "body": body}
        for key, page in extra:
            responses[key] = {"status": 200, "body": page}
    for params in _requester_role_searches(built):
        matched = search(built.chart.resources, "PractitionerRole", params)
        body = searchset(base, matched, url(base, "PractitionerRole", params))
        responses[recorded.request_key("GET", "PractitionerRole", params)] = {"status": 200, "body": body}
    return recorded.recording("replay", base, built.scenario.name, responses)


def _requester_role_searches(built: Built) -> list[dict[str, str]]:
    """The service looks up the roles (specialty) of each ordering Practitioner the record does not
    already describe: ``PractitionerRole?practitioner=<id>``."""
    requesters = {o.get("requester", {}).get("reference", "") for o in built.orders}
    return [{"practitioner": r.split("/", 1)[1]} for r in sorted(requesters) if r.startswith("Practitioner/")]


def hook_variants(sc: Scenario) -> tuple[str, ...]:
    extra = tuple(f"{v}-prefetch" for v in sc.variants)
    return ("prefetch", "no-prefetch") + extra


def hook_request(built: Built, variant: str, base: str = REPLAY_BASE) -> dict:
    name = built.scenario.name
    request = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid5(NAMESPACE, f"{name}/{variant}")),
        "fhirServer": base,
        "context": {
            **built.context,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"fullUrl": f"urn:uuid:{uuid.uuid5(NAMESPACE, order['id'])}", "resource": order}
                    for order in built.orders
                ],
            },
        },
    }
    if variant == "no-prefetch":
        return request
    prefetch = {}
    for requirement in data_requirements():
        key = requirement.key
        if variant == "partial-prefetch" and key not in PARTIAL_KEYS or not requirement.applies(built.context):
            continue  # a template the EHR cannot substitute (userPractitionerId for a role user) is not sent
        status, body, _ = _query_answer(built, key, base, paginate=variant == "paginated-prefetch")
        # A query the EHR could not run arrives as an OperationOutcome in place of the data (CDS Hooks 2.0).
        prefetch[key] = body if status == 200 else operation_outcome("exception", "prefetch query failed")
    request["prefetch"] = prefetch
    return request


def expected(built: Built) -> dict:
    sc = built.scenario
    exp = sc.expected
    out = {
        "scenario": sc.name,
        "summary": sc.summary,
        "product": PRODUCTS[sc.product]["label"],
        "policy": sc.policy,
        "asOf": AS_OF.isoformat(),
        "ehrStyle": sc.style,
        "lineOfBusiness": sc.line_of_business,
        "order": f"MedicationRequest/{built.orders[0]['id']}",
        "verdict": exp.verdict,
        "criteria": exp.criteria,
        "rationale": exp.rationale,
        "hooks": [f"{sc.name}-{v}.json" for v in hook_variants(sc)],
    }
    if exp.tocilizumab:
        toci = next(o for o in built.orders if o["id"].endswith("-toci"))
        out["tocilizumab"] = {"order": f"MedicationRequest/{toci['id']}", **exp.tocilizumab}
    if exp.referral:
        out["referral"] = exp.referral
    return out


def generate() -> dict[Path, dict]:
    """Every generated file (path relative to ``sandbox/``) and its JSON content."""
    files: dict[Path, dict] = {}
    for sc in SCENARIOS:
        built = materialise(sc)
        files[Path("patients", f"{sc.name}.json")] = patient_bundle(built)
        for variant in hook_variants(sc):
            files[Path("hooks", f"{sc.name}-{variant}.json")] = hook_request(built, variant)
        files[Path("expected", f"{sc.name}.json")] = expected(built)
        files[Path("recorded", "replay", f"{sc.name}.json")] = recorded_responses(built)
    return files


def dumps(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


GENERATED_DIRS = ("patients", "hooks", "expected", Path("recorded", "replay"))


def stale_files(root: Path = SANDBOX) -> list[str]:
    """Generated files that are missing, different or no longer generated (empty when up to date)."""
    files = generate()
    problems = [str(p) for p, data in files.items() if not (root / p).is_file() or (root / p).read_text("utf-8") != dumps(data)]
    for directory in GENERATED_DIRS:
        for path in sorted((root / directory).glob("*.json")):
            if path.relative_to(root) not in files:
                problems.append(f"{path.relative_to(root)} (not generated)")
    return problems


def write(root: Path = SANDBOX) -> int:
    files = generate()
    for directory in GENERATED_DIRS:
        for path in (root / directory).glob("*.json"):
            if path.relative_to(root) not in files:
                path.unlink()
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = dumps(data)
        if not target.is_file() or target.read_text("utf-8") != text:
            target.write_text(text, encoding="utf-8")
    return len(files)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--check" in argv:
        stale = stale_files()
        for line in stale:
            print(f"out of date: {line}", file=sys.stderr)
        if stale:
            print("run: python -m sandbox.build", file=sys.stderr)
        return 1 if stale else 0
    print(f"wrote {write()} files under {SANDBOX}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
