"""load / record / remove against a HAPI-shaped fake (``responses``): HAPI's transaction responses,
base-level ``_getpages`` paging links, ``HAPI-`` error OperationOutcomes and its numeric-id refusal."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from click.testing import CliRunner

from fhir_mappings.data_requirements import data_requirements
from sandbox import hapi, recorded
from sandbox.cli import sandbox as sandbox_cli
from sandbox.replay_server import ReplayStore
from sandbox.search import operation_outcome, search, searchset

HAPI = "https://hapi.example.org/baseR4"
SCENARIO = "abecma-meets-all-criteria"
SANDBOX = hapi.SANDBOX


def patient_resources(name: str = SCENARIO) -> list[dict]:
    bundle = json.loads((SANDBOX / "patients" / f"{name}.json").read_text(encoding="utf-8"))
    return [e["resource"] for e in bundle["entry"]]


class FakeHapi:
    """Just enough of a HAPI JPA server: transactions, reads, searches paged 3 at a time with
    ``[base]?_getpages=..`` links, and HAPI's error OperationOutcomes."""

    def __init__(self, mock: responses.RequestsMock, resources: list[dict] = ()):
        self.stored = {f"{r['resourceType']}/{r['id']}": r for r in resources}
        self.pages: dict[str, list[dict]] = {}
        self.transactions: list[dict] = []
        mock.add_callback(responses.POST, HAPI, callback=self.transaction)
        mock.add_callback(responses.GET, re.compile(re.escape(HAPI) + r"(/.*|\?.*)?$"), callback=self.get)

    def transaction(self, request):
        bundle = json.loads(request.body)
        self.transactions.append(bundle)
        out = []
        for entry in bundle["entry"]:
            method, ref = entry["request"]["method"], entry["request"]["url"]
            if method == "PUT":
                rid = ref.split("/")[1]
                if rid.isdigit():
                    return 400, {}, json.dumps(operation_outcome("processing", (
                        f"HAPI-0960: Can not create resource with ID[{rid}], no resource with this ID exists and "
                        "clients may only assign IDs which contain at least one non-numeric character")))
                status = "200 OK" if ref in self.stored else "201 Created"
                self.stored[ref] = entry["resource"]
            else:
                self.stored.pop(ref, None)
                status = "204 No Content"
            out.append({"response": {"status": status}})
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": out})

    def get(self, request):
        parts = urlsplit(request.url)
        path = parts.path[len(urlsplit(HAPI).path):].strip("/")
        params = dict(parse_qsl(parts.query))
        if not path and "_getpages" in params:
            return self.page(params["_getpages"], int(params["_getpagesoffset"]))
        if "/" in path:
            if path not in self.stored:
                return 404, {}, json.dumps(operation_outcome("processing", f"HAPI-2001: Resource {path} is not known"))
            return 200, {}, json.dumps(self.stored[path])
        params.pop("_count", None)
        matched = search(list(self.stored.values()), path, params)
        token = f"page-{len(self.pages)}"
        self.pages[token] = matched
        return self.page(token, 0, self_url=request.url)

    def page(self, token: str, offset: int, self_url: str | None = None):
        matched = self.pages[token]
        link = f"{HAPI}?_getpages={token}&_getpagesoffset={{}}&_count=3&_pretty=true&_bundletype=searchset"
        nxt = link.format(offset + 3) if offset + 3 < len(matched) else None
        body = searchset(HAPI, matched[offset:offset + 3], self_url or link.format(offset), nxt, total=len(matched))
        return 200, {}, json.dumps(body)


def test_load_puts_each_scenario_as_a_transaction_and_is_idempotent(http_mock):
    fake = FakeHapi(http_mock)
    first = hapi.load(HAPI, [SCENARIO])
    again = hapi.load(HAPI, [SCENARIO])
    count = len(patient_resources())
    assert first[0].detail == f"{count} resources ({count} created, 0 updated)"
    assert again[0].detail == f"{count} resources (0 created, {count} updated)"
    assert len(fake.stored) == count
    assert all(e["request"]["method"] == "PUT" for e in fake.transactions[0]["entry"])


@pytest.fixture
def own_patients(tmp_path, monkeypatch):
    """A copy of one scenario's patients directory that a test may spoil."""
    (tmp_path / "patients").mkdir()
    shutil.copy(SANDBOX / "patients" / f"{SCENARIO}.json", tmp_path / "patients")
    monkeypatch.setattr(hapi, "SANDBOX", tmp_path)
    return tmp_path / "patients" / f"{SCENARIO}.json"


@pytest.mark.parametrize("spoil, message", [
    (lambda r: r["meta"].pop("tag"), "without the sandbox tag"),
    (lambda r: r.update(id="12345"), "purely numeric"),
])
def test_load_refuses_untagged_or_numeric_resources_before_uploading_anything(own_patients, http_mock, spoil, message):
    bundle = json.loads(own_patients.read_text())
    spoil(bundle["entry"][3]["resource"])
    own_patients.write_text(json.dumps(bundle))
    with pytest.raises(hapi.SandboxError, match=message):
        hapi.load(HAPI)
    assert len(http_mock.calls) == 0


def test_hapi_numeric_id_refusal_is_reported_with_its_diagnostics(own_patients, http_mock, monkeypatch):
    FakeHapi(http_mock)
    monkeypatch.setattr(hapi, "check_uploadable", lambda bundle, name: None)  # as if a bundle slipped through
    bundle = json.loads(own_patients.read_text())
    bundle["entry"][0]["request"]["url"] = "Patient/123"
    own_patients.write_text(json.dumps(bundle))
    with pytest.raises(hapi.SandboxError, match="HTTP 400: HAPI-0960: Can not create resource with ID\\[123\\]"):
        hapi.load(HAPI, [SCENARIO])


def test_record_follows_hapi_paging_and_the_recording_replays(http_mock, tmp_path):
    FakeHapi(http_mock, patient_resources())
    outcome = hapi.record(HAPI, tmp_path, [SCENARIO])
    assert outcome[0].scenario == SCENARIO
    data = recorded.load(tmp_path / f"{SCENARIO}.json")
    assert data["server"] == "hapi" and data["base"] == HAPI
    assert any(key.startswith("GET ?_bundletype=searchset&_count=3&_getpages=") for key in data["responses"])
    # The recording, rebased onto the replay server, gives back all 10 observations across the pages.
    store = ReplayStore("http://127.0.0.1:9/fhir", patients_dir=tmp_path / "none", recorded_dir=tmp_path)
    context = json.loads((SANDBOX / "hooks" / f"{SCENARIO}-no-prefetch.json").read_text())["context"]
    path, params = next(r for r in data_requirements() if r.key == "observations").query(context)
    status, body = store.answer(path, sorted(params.items()))
    ids = []
    while True:
        assert status == 200
        ids += [e["resource"]["id"] for e in body.get("entry", ())]
        nxt = next((ln["url"] for ln in body["link"] if ln["relation"] == "next"), None)
        if not nxt:
            break
        assert nxt.startswith("http://127.0.0.1:9/fhir?_getpages=")
        query = urlsplit(nxt).query
        status, body = store.answer("", sorted(parse_qsl(query)))
    assert len(ids) == 10


def test_record_stores_hapi_errors_as_part_of_the_recording(http_mock, tmp_path):
    outcome = operation_outcome("exception", "HAPI-2223: Timer already cancelled.")
    http_mock.add(responses.GET, re.compile(re.escape(HAPI) + ".*"), json=outcome, status=500)
    hapi.record(HAPI, tmp_path, [SCENARIO])
    data = recorded.load(tmp_path / f"{SCENARIO}.json")
    assert {r["status"] for r in data["responses"].values()} == {500}
    assert len(data["responses"]) == len(data_requirements())


def test_record_refuses_a_next_link_to_another_host(http_mock, tmp_path):
    foreign = searchset(HAPI, [], f"{HAPI}/Patient", next_url="https://elsewhere.example/fhir?_getpages=x")
    http_mock.add(responses.GET, re.compile(re.escape(HAPI) + ".*"), json=foreign)
    with pytest.raises(hapi.SandboxError, match="leaves the FHIR server"):
        hapi.record(HAPI, tmp_path, [SCENARIO])


def test_remove_deletes_only_tagged_resources_in_one_transaction(http_mock):
    theirs = {"resourceType": "Patient", "id": "someone-else", "meta": {"tag": [{"system": "x", "code": "y"}]}}
    fake = FakeHapi(http_mock, patient_resources() + patient_resources("seizure-history") + [theirs])
    deleted = hapi.remove(HAPI)
    assert deleted == len(patient_resources()) + len(patient_resources("seizure-history"))
    assert list(fake.stored) == ["Patient/someone-else"]
    methods = {e["request"]["method"] for e in fake.transactions[-1]["entry"]}
    assert methods == {"DELETE"}
    assert hapi.remove(HAPI) == 0


def test_remove_reports_a_hapi_error(http_mock):
    outcome = operation_outcome("exception", "HAPI-2223: Timer already cancelled.")
    http_mock.add(responses.GET, re.compile(re.escape(HAPI) + ".*"), json=outcome, status=500)
    with pytest.raises(hapi.SandboxError, match="HTTP 500: HAPI-2223"):
        hapi.remove(HAPI)


def test_cli_commands_report_results_and_errors(http_mock, tmp_path):
    FakeHapi(http_mock)
    runner = CliRunner()
    result = runner.invoke(sandbox_cli, ["load", "--fhir-server", HAPI, "--scenario", SCENARIO])
    assert result.exit_code == 0 and f"{SCENARIO}: " in result.output
    result = runner.invoke(sandbox_cli, ["record", "--fhir-server", HAPI, "--out", str(tmp_path), "--scenario", SCENARIO])
    assert result.exit_code == 0 and (tmp_path / f"{SCENARIO}.json").is_file()
    result = runner.invoke(sandbox_cli, ["remove", "--fhir-server", HAPI])
    assert result.exit_code == 0 and "deleted" in result.output
    result = runner.invoke(sandbox_cli, ["load", "--fhir-server", "ftp://nope", "--scenario", SCENARIO])
    assert result.exit_code != 0 and "http(s) FHIR base URL" in result.output
    result = runner.invoke(sandbox_cli, ["load", "--fhir-server", HAPI, "--scenario", "no-such-scenario"])
    assert result.exit_code != 0 and "unknown scenario" in result.output
    result = runner.invoke(sandbox_cli, ["build", "--check"])
    assert result.exit_code == 0, result.output


def test_unreachable_server_is_a_clear_cli_error():
    # The autouse http_mock refuses the connection, as an unreachable host would.
    result = CliRunner().invoke(sandbox_cli, ["remove", "--fhir-server", HAPI])
    assert result.exit_code != 0 and "unreachable" in result.output
    assert Path(SANDBOX / "patients").is_dir()
