"""The committed sandbox files: generated from sandbox.scenarios, valid FHIR R4 / CDS Hooks 2.0, and
consistent with the data requirements the service queries."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from fhir_mappings.data_requirements import data_requirements
from sandbox import build, recorded
from sandbox.catalog import SANDBOX_TAG
from sandbox.expectations import scenario_of_hook
from sandbox.scenarios import scenario

SANDBOX = Path(build.__file__).parent
PATIENTS = sorted((SANDBOX / "patients").glob("*.json"))
HOOKS = sorted((SANDBOX / "hooks").glob("*.json"))
EXPECTED = sorted((SANDBOX / "expected").glob("*.json"))
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
PREFETCH_KEYS = {r.key for r in data_requirements()}
CRITERION_IDS = re.compile(r"I\.A\.(10|[1-9])(\.[abc](\.(i|ii|iii))?)?|I\.B|II\.A\.1|III\.[AB]|I\.A\.approval\.tocilizumab")
REQUIRED = re.compile(r"I\.A\.(10|[1-9])|II\.A\.1|III\.[AB]")  # the criteria a verdict is decided on


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_committed_files_are_up_to_date_with_the_generator():
    assert build.stale_files() == [], "run: python -m sandbox.build"


def test_there_are_at_least_24_scenarios_each_with_its_files():
    names = {p.stem for p in PATIENTS}
    assert len(names) >= 24
    assert names == {p.stem for p in EXPECTED} == {scenario_of_hook(h) for h in HOOKS}
    for name in names:
        assert (SANDBOX / "hooks" / f"{name}-prefetch.json").is_file()
        assert (SANDBOX / "hooks" / f"{name}-no-prefetch.json").is_file()
        assert (SANDBOX / "recorded" / "replay" / f"{name}.json").is_file()


def _all_resources(resource: dict):
    yield resource
    yield from resource.get("contained", ())


def _references(value):
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "reference" and isinstance(inner, str):
                yield inner
            else:
                yield from _references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _references(inner)


@pytest.mark.parametrize("path", PATIENTS, ids=lambda p: p.stem)
def test_patient_bundle_is_a_tagged_put_transaction_with_stable_ids(path):
    bundle = load(path)
    Bundle.model_validate(bundle)  # every resource parses as FHIR R4 (fhir.resources R4B)
    assert bundle["type"] == "transaction"
    keys = set()
    for entry in bundle["entry"]:
        resource = entry["resource"]
        rid = resource["id"]
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{rid}"}
        assert FHIR_ID.fullmatch(rid) and not rid.isdigit()
        assert rid.startswith(path.stem + "-")
        for inner in _all_resources(resource):
            assert SANDBOX_TAG in inner["meta"]["tag"]
        keys.add(f"{resource['resourceType']}/{rid}")
    for entry in bundle["entry"]:
        for ref in _references(entry["resource"]):
            assert ref.startswith("#") or ref in keys, f"{ref} does not resolve inside {path.name}"


@pytest.mark.parametrize("path", HOOKS, ids=lambda p: p.stem)
def test_hook_is_a_valid_order_sign_request(path):
    hook = load(path)
    assert hook["hook"] == "order-sign"
    uuid.UUID(hook["hookInstance"])
    assert hook["fhirServer"] == build.REPLAY_BASE
    assert "fhirAuthorization" not in hook
    context = hook["context"]
    assert re.fullmatch(r"(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}", context["userId"])
    assert FHIR_ID.fullmatch(context["patientId"])
    orders = context["draftOrders"]
    Bundle.model_validate(orders)
    assert orders["type"] == "collection" and orders["entry"]
    first = orders["entry"][0]["resource"]
    # draft as order-sign sends a new order; active when the scenario re-signs an order already placed
    assert first["resourceType"] == "MedicationRequest"
    assert first["status"] == scenario(scenario_of_hook(path)).order_status
    for entry in orders["entry"]:
        assert entry["fullUrl"].startswith("urn:uuid:")
        assert entry["resource"]["subject"]["reference"] == f"Patient/{context['patientId']}"
    prefetch = hook.get("prefetch")
    if path.stem.endswith("-no-prefetch"):
        assert prefetch is None
        return
    applicable = {r.key for r in data_requirements() if r.applies(context)}
    assert set(prefetch) <= applicable
    if path.stem.endswith("-partial-prefetch"):
        assert set(prefetch) < applicable
    else:
        assert set(prefetch) == applicable
    for value in prefetch.values():
        get_fhir_model_class(value["resourceType"]).model_validate(value)
    assert prefetch["patient"]["id"] == context["patientId"]
    assert f"{prefetch['user']['resourceType']}/{prefetch['user']['id']}" == context["userId"]


@pytest.mark.parametrize("path", [h for h in HOOKS if h.stem.endswith("-prefetch") and "-no-" not in h.stem], ids=lambda p: p.stem)
def test_prefetch_holds_only_the_patients_resources_matching_the_query(path):
    hook = load(path)
    patient = f"Patient/{hook['context']['patientId']}"
    observations = hook["prefetch"].get("observations")
    if observations and observations["resourceType"] == "Bundle":
        codes = dict(data_requirements()[4].search)["code"].split(",")
        for entry in observations.get("entry", ()):
            obs = entry["resource"]
            assert obs["subject"]["reference"] == patient
            assert any(f"{c['system']}|{c['code']}" in codes for c in obs["code"]["coding"])


@pytest.mark.parametrize("path", [h for h in HOOKS if h.stem.endswith("-no-prefetch")], ids=lambda p: p.stem)
def test_every_fallback_query_of_a_no_prefetch_hook_is_recorded(path):
    hook = load(path)
    data = recorded.load(SANDBOX / "recorded" / "replay" / f"{scenario_of_hook(path)}.json")
    context = {k: hook["context"].get(k) for k in ("patientId", "userId", "encounterId")}
    for requirement in filter(lambda r: r.applies(context), data_requirements()):
        rel, params = requirement.query(context)
        answer = data["responses"][recorded.request_key("GET", rel, params)]
        if answer["status"] != 200:
            assert answer["body"]["resourceType"] == "OperationOutcome"
            continue
        body = answer["body"]
        pages = 1
        while body["resourceType"] == "Bundle":  # follow HAPI-style next links inside the recording
            nxt = next((ln["url"] for ln in body["link"] if ln["relation"] == "next"), None)
            if not nxt:
                break
            body = data["responses"][recorded.key_for_url("GET", nxt, data["base"])]["body"]
            pages += 1
        assert pages < 10


@pytest.mark.parametrize("path", EXPECTED, ids=lambda p: p.stem)
def test_expected_file_names_a_verdict_and_policy_criteria(path):
    exp = load(path)
    assert exp["scenario"] == path.stem
    assert exp["verdict"] in {"meets-policy", "does-not-meet", "documentation-incomplete", "indeterminate"}
    assert (exp["product"], exp["policy"]) in {("Abecma", "CP.PHAR.481"), ("KITE-772", "CP.PHAR.769")}
    for cid, status in exp["criteria"].items():
        assert CRITERION_IDS.fullmatch(cid), cid
        assert status in {"met", "not-met", "unknown"}
    required = {s for c, s in exp["criteria"].items() if REQUIRED.fullmatch(c)}
    if exp["verdict"] == "meets-policy":
        assert required == {"met"}
    elif exp["verdict"] == "does-not-meet":
        assert "not-met" in required
    else:
        assert "unknown" in required and "not-met" not in required
    for hook in exp["hooks"]:
        assert (SANDBOX / "hooks" / hook).is_file()
