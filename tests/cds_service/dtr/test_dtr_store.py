"""The hook keeps its decisions by coverage-assertion-id in the audit database, and a DTR client that
follows the coverage-information gets the package prefilled from them: black-box, from a sandbox hook
through the real service."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from dtr_fixtures import stored_context
from sqlalchemy import text

from cds_service import create_app
from cds_service.audit import AuditStore
from cds_service.audit.cli import audit
from cds_service.dtr.routes import CONTEXT_STORE_KEY
from cds_service.dtr.store import ContextStore
from cds_service.response.coverage_information import COVERAGE_INFORMATION_URL
from tests.cds_service.conftest import HOOK_URL, protocol_settings
from tests.dtr_checks import check_response

SANDBOX = Path(__file__).parents[3] / "sandbox"
AS_OF = date(2026, 11, 24)
PACKAGE = "/fhir/Questionnaire/$questionnaire-package"


def hook(scenario: str) -> dict:
    """A sandbox hook with complete prefetch, sent without a FHIR server (nothing is read from one)."""
    body = json.loads((SANDBOX / "hooks" / f"{scenario}-prefetch.json").read_text(encoding="utf-8"))
    body.pop("fhirAuthorization", None)
    body.pop("fhirServer")
    return body


@pytest.fixture
def app():
    return create_app(protocol_settings(public_base_url="https://payer.example"), as_of=AS_OF)


def sign(app, body: dict) -> dict:
    answer = app.test_client().post(HOOK_URL, json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def coverage_information(answer: dict) -> list[dict]:
    return [{p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in e["extension"]}
            for a in answer["systemActions"] for e in a["resource"].get("extension", ())
            if e["url"] == COVERAGE_INFORMATION_URL]


def package(app, body: dict, assertion_id: str):
    coverage = body["prefetch"]["coverage"]["entry"][0]["resource"]
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "coverage", "resource": coverage}, {"name": "context", "valueString": assertion_id}]}
    return app.test_client().post(PACKAGE, data=orjson.dumps(params), content_type="application/fhir+json")


def test_a_dtr_client_following_the_hook_gets_the_form_prefilled_from_its_decision(app):
    body = hook("missing-labs")
    [info] = coverage_information(sign(app, body))
    answer = package(app, body, info["coverage-assertion-id"])
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [bundle] = [p["resource"] for p in answer.get_json()["parameter"] if p["name"] == "PackageBundle"]
    form, draft = (e["resource"] for e in bundle["entry"])
    check_response(draft, form)
    assert draft["identifier"]["value"] == info["coverage-assertion-id"]
    assert draft["subject"]["reference"] == f"Patient/{body['context']['patientId']}"
    questions = {i["linkId"] for i in _items(form["item"]) if i["linkId"].endswith(".met")}
    answered = {i["linkId"] for i in _items(draft["item"]) if i["linkId"].endswith(".met") and i.get("answer")}
    expected = json.loads((SANDBOX / "expected" / "missing-labs.json").read_text(encoding="utf-8"))["criteria"]
    unknown = {f"{cid}.met" for cid, status in expected.items() if status == "unknown"} & questions
    assert answered and unknown and not answered & unknown, "shown criteria prefilled, unknown ones left open"


def _items(items):
    for item in items or ():
        yield item
        yield from _items(item.get("item"))


def test_without_coverage_information_nothing_is_kept(app):
    body = hook("missing-labs")
    body["extension"] = {"davinci-crd.configuration": {"coverage-info": False}}
    sign(app, body)
    with app.extensions[CONTEXT_STORE_KEY].engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM dtr_context")) == 0


def test_a_failed_write_leaves_the_hook_answer_unchanged_and_is_counted(app):
    store = app.extensions[CONTEXT_STORE_KEY]
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE dtr_context"))
    answer = sign(app, hook("missing-labs"))
    assert coverage_information(answer)
    assert store.write_failures == 1


def clock_at(moment: datetime):
    return lambda: moment


def test_the_same_assertion_id_replaces_its_context_and_expired_ones_are_refused_then_purged(app):
    now = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)
    engine = app.extensions[CONTEXT_STORE_KEY].engine
    store = ContextStore(engine, context_days=30, retention_days=7, clock=clock_at(now))
    assert store.expiry() == now + timedelta(days=7), "never kept longer than the audit retention"
    first = stored_context(now + timedelta(days=1))
    assert store.keep([first]) and store.find(first.assertion_id) == first
    second = stored_context(now + timedelta(days=2))
    store.keep([second])
    assert store.find(first.assertion_id) == second
    assert store.find("no-such-assertion") is None

    later = ContextStore(engine, clock=clock_at(now + timedelta(days=3)))
    app.extensions[CONTEXT_STORE_KEY] = later
    answer = package(app, hook("missing-labs") | {"prefetch": {"coverage": {"entry": [{"resource": {
        "resourceType": "Coverage", "id": second.coverage.split("/")[1], "status": "active",
        "beneficiary": {"reference": second.patient}, "payor": [{"display": "Plan"}]}}]}}},
        second.assertion_id)
    assert answer.status_code == 404 and "expired" in answer.get_json()["issue"][0]["details"]["text"]
    assert later.purge(older_than_days=365) == 1
    assert later.find(second.assertion_id) is None


def test_audit_purge_also_deletes_expired_contexts(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with closing(AuditStore.from_url(url)) as audit_store:
        ContextStore(audit_store.engine).keep([stored_context(datetime.now(timezone.utc) - timedelta(seconds=1))])
    result = CliRunner().invoke(audit, ["purge", "--older-than", "30", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "deleted 1 DTR context(s)" in result.output
