"""The hook keeps its decisions by coverage-assertion-id in the audit database, and a DTR client that
follows the coverage-information gets the package prefilled from them: black-box, from a sandbox hook
through the real service."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from dtr_fixtures import stored_context
from dtr_service import SANDBOX, coverage_information, hook, package, sign
from sqlalchemy import text

from cds_service.audit import AuditStore
from cds_service.audit.cli import audit
from cds_service.dtr.routes import CONTEXT_STORE_KEY
from cds_service.dtr.store import ContextStore
from tests.dtr_checks import check_response


def test_a_dtr_client_following_the_hook_gets_the_form_prefilled_from_its_decision(sandbox_app):
    body = hook("missing-labs")
    [info] = coverage_information(sign(sandbox_app, body))
    answer = package(sandbox_app, body, info["coverage-assertion-id"])
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


def test_without_coverage_information_nothing_is_kept(sandbox_app):
    body = hook("missing-labs")
    body["extension"] = {"davinci-crd.configuration": {"coverage-info": False}}
    sign(sandbox_app, body)
    with sandbox_app.extensions[CONTEXT_STORE_KEY].engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM dtr_context")) == 0


def test_a_failed_write_leaves_the_hook_answer_unchanged_and_is_counted(sandbox_app):
    store = sandbox_app.extensions[CONTEXT_STORE_KEY]
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE dtr_context"))
    answer = sign(sandbox_app, hook("missing-labs"))
    assert coverage_information(answer)
    assert store.write_failures == 1


def clock_at(moment: datetime):
    return lambda: moment


def test_the_same_assertion_id_replaces_its_context_and_expired_ones_are_refused_then_purged(sandbox_app):
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    engine = sandbox_app.extensions[CONTEXT_STORE_KEY].engine
    store = ContextStore(engine, context_days=30, retention_days=7, clock=clock_at(now))
    assert store.expiry() == now + timedelta(days=7), "never kept longer than the audit retention"
    first = stored_context(now + timedelta(days=1))
    assert store.keep([first]) and store.find(first.assertion_id) == first
    second = stored_context(now + timedelta(days=2))
    store.keep([second])
    assert store.find(first.assertion_id) == second
    assert store.find("no-such-assertion") is None

    later = ContextStore(engine, clock=clock_at(now + timedelta(days=3)))
    sandbox_app.extensions[CONTEXT_STORE_KEY] = later
    answer = package(sandbox_app, hook("missing-labs") | {"prefetch": {"coverage": {"entry": [{"resource": {
        "resourceType": "Coverage", "id": second.coverage.split("/")[1], "status": "active",
        "beneficiary": {"reference": second.patient}, "payor": [{"display": "Plan"}]}}]}}},
        second.assertion_id)
    assert answer.status_code == 404 and "expired" in answer.get_json()["issue"][0]["details"]["text"]
    assert later.purge(older_than_days=365) == 1
    assert later.find(second.assertion_id) is None


def test_audit_purge_also_deletes_expired_contexts(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with closing(AuditStore.from_url(url)) as audit_store:
        ContextStore(audit_store.engine).keep([stored_context(datetime.now(UTC) - timedelta(seconds=1))])
    result = CliRunner().invoke(audit, ["purge", "--older-than", "30", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "deleted 1 DTR context(s)" in result.output
