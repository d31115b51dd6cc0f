"""The loopback replay server answers reads, searches, recorded failures and paging over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from fhir_mappings.data_requirements import data_requirements
from sandbox import build, recorded
from sandbox.bench.fhir_fakes import delayed_replay
from sandbox.replay_server import ReplayStore, make_server, running

SANDBOX = Path(build.__file__).parent
pytestmark = pytest.mark.loopback_http


def hook(name: str) -> dict:
    return json.loads((SANDBOX / "hooks" / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def base():
    with running() as url:
        yield url


def get(base: str, path: str, params=None) -> requests.Response:
    return requests.get(f"{base}/{path}", params=params, timeout=10)


def test_read_returns_the_patient_resource(base):
    context = hook("abecma-meets-all-criteria-no-prefetch")["context"]
    response = get(base, f"Patient/{context['patientId']}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    assert response.json()["birthDate"] == "1958-03-14"
    assert get(base, "Patient/no-such-patient").status_code == 404


def test_fallback_queries_follow_hapi_style_paging_to_the_full_result(base):
    context = hook("abecma-meets-all-criteria-no-prefetch")["context"]
    path, params = next(r for r in data_requirements() if r.key == "observations").query(context)
    page = get(base, path, params).json()
    ids, pages = [], 0
    while True:
        pages += 1
        ids += [e["resource"]["id"] for e in page.get("entry", ())]
        nxt = next((ln["url"] for ln in page["link"] if ln["relation"] == "next"), None)
        if not nxt:
            break
        assert nxt.startswith(f"{base}?_getpages=")  # rebased onto the running server's port
        page = requests.get(nxt, timeout=10).json()
    assert pages == 4 and len(ids) == page["total"] == 10 == len(set(ids))


def test_paginated_prefetch_next_link_resolves_on_the_replay_server(base):
    request = recorded.rebase(hook("kite772-two-prior-lines-only-paginated-prefetch"), build.REPLAY_BASE, base)
    first = request["prefetch"]["observations"]
    nxt = next(ln["url"] for ln in first["link"] if ln["relation"] == "next")
    second = requests.get(nxt, timeout=10).json()
    assert second["resourceType"] == "Bundle" and second["entry"]
    assert not {e["resource"]["id"] for e in first["entry"]} & {e["resource"]["id"] for e in second["entry"]}


def test_recorded_failure_is_replayed_with_its_status(base):
    context = hook("fhir-server-failure-no-prefetch")["context"]
    path, params = next(r for r in data_requirements() if r.key == "observations").query(context)
    response = get(base, path, params)
    assert response.status_code == 500
    assert response.json()["resourceType"] == "OperationOutcome"


def test_unrecorded_search_is_computed_with_count_paging(base):
    context = hook("abecma-meets-all-criteria-no-prefetch")["context"]
    params = {"patient": context["patientId"], "_count": "4"}
    first = get(base, "MedicationAdministration", params).json()
    assert first["total"] == 9 and len(first["entry"]) == 4
    nxt = next(ln["url"] for ln in first["link"] if ln["relation"] == "next")
    rest = requests.get(nxt, timeout=10).json()
    assert len(rest["entry"]) == 4 and rest["entry"][0]["resource"]["id"] not in {
        e["resource"]["id"] for e in first["entry"]}


def test_unknown_search_parameter_and_writes_are_refused(base):
    assert get(base, "Observation", {"patient": "x", "value-quantity": "gt5"}).status_code == 400
    response = requests.post(f"{base}/Patient", json={"resourceType": "Patient"}, timeout=10)
    assert response.status_code == 405
    assert get(base, "metadata").json()["resourceType"] == "CapabilityStatement"


def test_connections_are_kept_alive_except_after_a_refused_write():
    with delayed_replay(0.0) as (base, counter), requests.Session() as session:  # counts client connections
        first = session.get(f"{base}/metadata", timeout=10)
        second = session.get(f"{base}/Patient/no-such-patient", timeout=10)
        assert (first.status_code, second.status_code) == (200, 404)
        assert first.raw.version == 11 and counter.connections == 1  # the 404 came on the same connection
        refused = session.post(f"{base}/Patient", json={"resourceType": "Patient"}, timeout=10)
        assert refused.status_code == 405 and refused.headers["Connection"] == "close"  # its body was not read
        assert session.get(f"{base}/metadata", timeout=10).status_code == 200
        assert counter.count == 3 and counter.connections == 2


def test_records_can_be_left_out_so_every_search_is_computed():
    context = hook("abecma-meets-all-criteria-no-prefetch")["context"]
    path, params = next(r for r in data_requirements() if r.key == "observations").query(context)
    recorded_pages = ReplayStore(build.REPLAY_BASE).answer(path, sorted(params.items()))[1]
    status, computed = ReplayStore(build.REPLAY_BASE, recorded_dir=None).answer(path, sorted(params.items()))
    assert any(ln["relation"] == "next" for ln in recorded_pages["link"])  # the recorded HAPI pages of 3
    assert status == 200 and len(computed["entry"]) == computed["total"] == 10  # _count=200 honoured
    assert not any(ln["relation"] == "next" for ln in computed["link"])


def test_the_server_binds_to_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        make_server("0.0.0.0", 0)


def test_store_answers_every_no_prefetch_hook_without_http():
    store = ReplayStore(build.REPLAY_BASE)
    for path in sorted((SANDBOX / "hooks").glob("*-no-prefetch.json")):
        context = json.loads(path.read_text(encoding="utf-8"))["context"]
        for requirement in filter(lambda r: r.applies(context), data_requirements()):
            rel, params = requirement.query(context)
            status, body = store.answer(rel, sorted(params.items()))
            assert status in (200, 500, 503), (path.name, rel)
            if status == 200 and body["resourceType"] == "Bundle":
                for entry in body.get("entry", ()):
                    assert entry["resource"]["id"].startswith(path.name.removesuffix("-no-prefetch.json"))
