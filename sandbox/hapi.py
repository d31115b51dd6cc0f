"""Load the sandbox patients into a FHIR server (e.g. the public HAPI R4 server), record its answers to
our fallback queries, and remove what we loaded.

Written for a shared public test server: every upload is refused unless every resource carries the
sandbox tag and a non-numeric id (HAPI rejects purely numeric client ids), uploads are ``PUT Type/id``
transactions (re-running updates instead of duplicating), removal deletes only resources found by our
tag, every request has a timeout, and paging links are followed only on the server we were given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from fhir_mappings.data_requirements import data_requirements
from sandbox import recorded
from sandbox.catalog import SANDBOX_TAG

SANDBOX = recorded.SANDBOX
FHIR_JSON = "application/fhir+json"
TIMEOUT = (5, 60)  # connect, read (seconds): a shared public server can be slow
MAX_PAGES = 50
TAG_QUERY = f"{SANDBOX_TAG['system']}|{SANDBOX_TAG['code']}"
# Deleted first to last: resources that reference others before the ones they reference.
DELETE_ORDER = ("MedicationRequest", "MedicationAdministration", "MedicationStatement", "Observation", "Procedure",
                "Condition", "Encounter", "Coverage", "PractitionerRole", "Patient", "Practitioner", "Organization")


class SandboxError(RuntimeError):
    """A refused upload or a FHIR server error, with the server's diagnostics (never resource contents)."""


@dataclass(frozen=True)
class Outcome:
    scenario: str
    detail: str


def scenario_names(selected: Iterable[str] = ()) -> list[str]:
    available = sorted(p.stem for p in (SANDBOX / "patients").glob("*.json"))
    chosen = list(selected) or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise SandboxError(f"unknown scenario(s): {', '.join(unknown)}")
    return chosen


def _base(fhir_server: str) -> str:
    parts = urlsplit(fhir_server)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SandboxError("--fhir-server must be an http(s) FHIR base URL without query or fragment")
    return fhir_server.rstrip("/")


def _error(response: requests.Response, action: str) -> SandboxError:
    """The server's own words (OperationOutcome diagnostics, e.g. ``HAPI-0960: ...``), shortened."""
    try:
        body = response.json()
        issues = body.get("issue", []) if body.get("resourceType") == "OperationOutcome" else []
        text = "; ".join(i.get("diagnostics") or i.get("code", "") for i in issues) or "no OperationOutcome"
    except ValueError:
        text = "response is not JSON"
    return SandboxError(f"{action}: HTTP {response.status_code}: {text[:300]}")


def check_uploadable(bundle: dict, name: str) -> None:
    """Refuse anything that is not ours: every entry a tagged resource with a non-numeric id, PUT to its id."""
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise SandboxError(f"{name}: not a transaction Bundle")
    for n, entry in enumerate(bundle.get("entry", ())):
        resource = entry.get("resource", {})
        where = f"{name} entry {n}"
        rid = resource.get("id", "")
        if not rid or rid.isdigit():
            raise SandboxError(f"{where}: id {rid!r} is missing or purely numeric (a server assigns those)")
        if entry.get("request") != {"method": "PUT", "url": f"{resource.get('resourceType')}/{rid}"}:
            raise SandboxError(f"{where}: request must be PUT {resource.get('resourceType')}/{rid}")
        for item in [resource, *resource.get("contained", ())]:
            if SANDBOX_TAG not in item.get("meta", {}).get("tag", ()):
                raise SandboxError(f"{where}: resource without the sandbox tag {TAG_QUERY}")


def load(fhir_server: str, scenarios: Iterable[str] = (), session: requests.Session | None = None) -> list[Outcome]:
    """Upload each scenario's patient transaction; safe to re-run (PUT updates in place)."""
    base, http = _base(fhir_server), session or requests.Session()
    names = scenario_names(scenarios)
    bundles = {name: json.loads((SANDBOX / "patients" / f"{name}.json").read_text(encoding="utf-8")) for name in names}
    for name, bundle in bundles.items():  # check everything before uploading anything
        check_uploadable(bundle, name)
    outcomes = []
    for name, bundle in bundles.items():
        response = http.post(base, json=bundle, headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON},
                             timeout=TIMEOUT)
        if not response.ok:
            raise _error(response, f"load {name}")
        statuses = [e.get("response", {}).get("status", "") for e in response.json().get("entry", ())]
        created = sum(s.startswith("201") for s in statuses)
        outcomes.append(Outcome(name, f"{len(statuses)} resources ({created} created, {len(statuses) - created} updated)"))
    return outcomes


def _same_server(link: str, base: str) -> bool:
    a, b = urlsplit(link), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc) and a.path.startswith(b.path)


def _get_pages(http: requests.Session, base: str, path: str, params: dict) -> list[tuple[str, requests.Response]]:
    """GET a search and follow its ``next`` links on the same server: [(request key, response)]."""
    pages = []
    response = http.get(f"{base}/{path}", params=params, headers={"Accept": FHIR_JSON, "Cache-Control": "no-cache"},
                        timeout=TIMEOUT)
    pages.append((recorded.request_key("GET", path, params), response))
    while response.ok and len(pages) < MAX_PAGES:
        body = response.json()
        nxt = next((ln.get("url") for ln in body.get("link", ()) if ln.get("relation") == "next"), None)
        if not nxt or body.get("resourceType") != "Bundle":
            break
        key = recorded.key_for_url("GET", nxt, base)
        if key is None or not _same_server(nxt, base):
            raise SandboxError(f"{path}: next link leaves the FHIR server; not followed")
        response = http.get(nxt, headers={"Accept": FHIR_JSON}, timeout=TIMEOUT)
        pages.append((key, response))
    return pages


def _context(name: str) -> dict:
    hook = json.loads((SANDBOX / "hooks" / f"{name}-no-prefetch.json").read_text(encoding="utf-8"))
    return {k: hook["context"].get(k) for k in ("patientId", "userId", "encounterId")}


def record(fhir_server: str, out_dir: Path, scenarios: Iterable[str] = (), server_name: str = "hapi",
           session: requests.Session | None = None) -> list[Outcome]:
    """Run the service's fallback queries for each scenario against ``fhir_server`` and store every
    response (errors included, as they are part of what the server does) in the recorded format."""
    base, http = _base(fhir_server), session or requests.Session()
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for name in scenario_names(scenarios):
        responses = {}
        for requirement in data_requirements():
            if not requirement.applies(_context(name)):
                continue
            path, params = requirement.query(_context(name))
            for key, response in _get_pages(http, base, path, params):
                try:
                    body = response.json()
                except ValueError:
                    raise SandboxError(f"record {name}: {path} answered HTTP {response.status_code} without JSON") from None
                responses[key] = {"status": response.status_code, "body": body}
        target = out_dir / f"{name}.json"
        target.write_text(json.dumps(recorded.recording(server_name, base, name, responses), indent=2) + "\n",
                          encoding="utf-8")
        failed = sum(r["status"] >= 400 for r in responses.values())
        outcomes.append(Outcome(name, f"{len(responses)} responses ({failed} errors) -> {target}"))
    return outcomes


def _tagged_resources(http: requests.Session, base: str) -> list[tuple[str, str]]:
    found = []
    for resource_type in DELETE_ORDER:
        for _, response in _get_pages(http, base, resource_type, {"_tag": TAG_QUERY, "_count": "200"}):
            if not response.ok:
                raise _error(response, f"search {resource_type} by tag")
            for entry in response.json().get("entry", ()):
                resource = entry.get("resource", {})
                if resource.get("resourceType") == resource_type and SANDBOX_TAG in resource.get("meta", {}).get("tag", ()):
                    found.append((resource_type, resource["id"]))
    return found


def remove(fhir_server: str, session: requests.Session | None = None) -> int:
    """Delete every resource carrying the sandbox tag, in one transaction; returns how many."""
    base, http = _base(fhir_server), session or requests.Session()
    found = _tagged_resources(http, base)
    if not found:
        return 0
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"{rtype}/{rid}"}} for rtype, rid in found],
    }
    response = http.post(base, json=bundle, headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}, timeout=TIMEOUT)
    if not response.ok:
        raise _error(response, "remove")
    return len(found)
