"""Audit trail: one row per hook call with the decision read from the response, feedback against card
uuids, retention purge, migrations, and write failures that never lose the answer.

Runs on SQLite always, and on PostgreSQL when ``CART_CDS_TEST_POSTGRES_URL`` is set."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from click.testing import CliRunner
from flask import Flask, g, jsonify, request
from sqlalchemy import event, inspect

from cds_service.audit import AuditSpool, AuditStore, HookCallRecord, feedback_received, hook_answered, install_audit
from cds_service.audit.cli import audit as audit_cli
from cds_service.audit.store import alembic_config, make_engine, migrate, schema_is_current
from cds_service.feedback import parse_feedback
from cds_service.order_sign import OrderSignOutcome
from cds_service.response.responses import Response
from fhir_mappings.facts import RetrievalOutcome, RetrievalState

SERVICE = "car-t-coverage"
VERDICTS = ["meets-policy", "does-not-meet", "documentation-incomplete", "indeterminate"]


def decision_card(verdict: str, order: str = "MedicationRequest/car-t-1") -> dict:
    card_uuid = str(uuid.uuid4())
    return {
        "uuid": card_uuid,
        "summary": f"Abecma order: {verdict}",
        "indicator": "info",
        "source": {"label": "Example Health Plan"},
        "extension": {"cart-cds.decision": {
            "order": order, "policy": "CP.PHAR.481", "policyVersion": "2025-04", "verdict": verdict,
            "criteria": [
                {"id": "I.A.3", "status": "met", "reason": "Age 67",
                 "evidence": [{"reference": "Patient/p1", "element": "birthDate", "value": "1959-03-02"}]},
                {"id": "I.A.4.a.i", "status": "unknown" if verdict != "meets-policy" else "met", "reason": "r",
                 "evidence": [{"reference": "Observation/mp-1", "element": "valueQuantity"}]},
            ],
        }},
    }


def hook_app(store: AuditStore, verdict: str | None, status: int = 200, spool: AuditSpool | None = None) -> Flask:
    """A stand-in for the service route: answers cards for ``verdict`` and hands the answer over with the
    retrieval data, as the route does; feedback is handed over with its comments kept."""
    app = Flask("audit-test")
    install_audit(app, store, spool)

    @app.post("/cds-services/<service_id>")
    def service(service_id):
        if status != 200:
            return jsonify({"resourceType": "OperationOutcome", "issue": []}), status
        body = {"cards": [decision_card(verdict)] if verdict else []}
        hook_answered(request.get_json()["hookInstance"], OrderSignOutcome(
            Response(),
            retrieval={"Observation": RetrievalOutcome(RetrievalState.FAILED, "timeout"),
                       "Condition": RetrievalOutcome(RetrievalState.COMPLETE)},
            timings={"retrieval_ms": 12.5, "evaluation_ms": 1.25}), body)
        return jsonify(body)

    @app.post("/cds-services/<service_id>/feedback")
    def feedback(service_id):
        feedback_received(parse_feedback(request.get_json(), keep_comments=True))
        return jsonify({})

    return app


@pytest.mark.parametrize("verdict", VERDICTS)
def test_one_row_per_hook_call_with_the_decision(store, verdict):
    hook_instance = str(uuid.uuid4())
    response = hook_app(store, verdict).test_client().post(
        f"/cds-services/{SERVICE}", json={"hook": "order-sign", "hookInstance": hook_instance})
    assert response.status_code == 200
    [row] = store.show(hook_instance)
    assert row["service"] == SERVICE and row["httpStatus"] == 200 and row["durationMs"] >= 0
    assert row["policies"] == [{"policy": "CP.PHAR.481", "version": "2025-04"}]
    [decision] = row["decisions"]
    assert decision["verdict"] == verdict and decision["order"] == "MedicationRequest/car-t-1"
    assert decision["criteria"]["I.A.3"] == "met"
    assert decision["evidence"] == ["Observation/mp-1", "Patient/p1"]
    assert row["retrieval"]["Observation"] == {"state": "failed", "reason": "timeout"}
    assert row["timings"] == {"retrieval_ms": 12.5, "evaluation_ms": 1.25}
    assert row["response"] == response.get_json()


def test_error_answers_and_empty_answers_are_audited_too(store):
    client = hook_app(store, None, status=400).test_client()
    client.post(f"/cds-services/{SERVICE}", json={"hookInstance": "h-400"})
    assert store.show("h-400")[0]["httpStatus"] == 400
    client = hook_app(store, None).test_client()
    client.post(f"/cds-services/{SERVICE}", json={"hookInstance": "h-empty"})
    assert store.show("h-empty")[0]["decisions"] == []


def test_unauthenticated_calls_are_not_audited(store):
    app = hook_app(store, "meets-policy")

    @app.before_request
    def refuse():
        return "", 401

    app.test_client().post(f"/cds-services/{SERVICE}", json={"hookInstance": "h-401"})
    assert store.show("h-401") == []


def test_feedback_is_stored_against_the_card_uuid(store):
    client = hook_app(store, "does-not-meet").test_client()
    answer = client.post(f"/cds-services/{SERVICE}", json={"hookInstance": "h-fb"}).get_json()
    card = answer["cards"][0]["uuid"]
    item = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:00:00Z",
            "overrideReason": {"userComment": "peer-to-peer review scheduled"}}
    client.post(f"/cds-services/{SERVICE}/feedback", json={"feedback": [item, {
        "card": "unknown-card", "outcome": "accepted", "outcomeTimestamp": "2026-11-24T10:00:00Z",
        "acceptedSuggestions": [{"id": "s-1"}]}]})
    [row] = store.show("h-fb")
    assert [f["outcome"] for f in row["feedback"]] == ["overridden"]
    assert row["feedback"][0]["overrideReason"]["userComment"] == "peer-to-peer review scheduled"


def test_a_card_uuid_answered_again_belongs_to_the_newest_call(store):
    first = store.record_hook_call(HookCallRecord("h-first", None, SERVICE, 200, 1.0, card_uuids=["c-1", "c-2"]))
    again = store.record_hook_call(HookCallRecord("h-again", None, SERVICE, 200, 1.0,
                                                  card_uuids=["c-2", "c-3", "c-3"]))
    assert None not in (first, again) and first != again
    store.record_feedback([{"card": "c-2", "outcome": "accepted"}, {"card": "c-1", "outcome": "overridden"},
                           {"card": "c-3", "outcome": "accepted"}], None, SERVICE)
    assert [f["outcome"] for f in store.show("h-first")[0]["feedback"]] == ["overridden"]
    assert [f["card"] for f in store.show("h-again")[0]["feedback"]] == ["c-2", "c-3"]


def test_a_write_the_store_cannot_take_is_spooled_and_never_claimed_as_audited(store, caplog, tmp_path):
    working = store.engine
    store.engine = make_engine(f"sqlite:///{tmp_path}/missing-dir/audit.sqlite3")  # the database is gone
    spool = AuditSpool(tmp_path / "spool", max_records=10)
    client = hook_app(store, "meets-policy", spool=spool).test_client()
    response = client.post(f"/cds-services/{SERVICE}", json={"hookInstance": "h-fail"})
    assert response.status_code == 200 and response.get_json()["cards"][0]["extension"]
    assert spool.pending() == 1
    messages = [r.getMessage() for r in caplog.records]
    assert "hook call spooled for the audit store" in messages and "hook call audited" not in messages
    store.engine = working
    assert store.show("h-fail") == []


def test_without_a_spool_an_answer_that_cannot_be_recorded_is_withheld(tmp_path):
    store = AuditStore(make_engine(f"sqlite:///{tmp_path}/missing-dir/audit.sqlite3"))
    response = hook_app(store, "meets-policy").test_client().post(f"/cds-services/{SERVICE}", json={"hookInstance": "h"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["issue"][0]["code"] == "transient"


def test_feedback_items_are_written_with_one_statement(store):
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    items = [{"card": f"c-{i}", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T10:15:00Z"} for i in range(50)]
    store.record_feedback(items, "iss", SERVICE)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO AUDIT_FEEDBACK")]
    assert len(inserts) == 1


def test_purge_deletes_only_records_older_than_the_retention(store):
    now = datetime.now(UTC)
    for days, hook_instance in ((40, "old"), (5, "recent")):
        store.record_hook_call(HookCallRecord(hook_instance, "iss", SERVICE, 200, 1.0, card_uuids=[hook_instance],
                                              recorded_at=now - timedelta(days=days)))
    assert store.purge(30, now=now) == 1
    assert store.show("old") == [] and len(store.show("recent")) == 1


def test_schema_comes_from_migrations(database_url):
    engine = make_engine(database_url)
    assert not schema_is_current(engine)
    migrate(engine)
    migrate(engine)  # idempotent: every worker runs it at start-up
    assert schema_is_current(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"audit_hook_call", "audit_card", "audit_feedback", "alembic_version"} <= tables
    with engine.begin() as connection:  # the migration can be undone cleanly
        command.downgrade(alembic_config(connection), "base")
    assert not {"audit_hook_call", "audit_card", "audit_feedback"} & set(inspect(engine).get_table_names())
    engine.dispose()


def test_cli_show_migrate_and_purge(database_url):
    runner = CliRunner()
    env = {"CART_CDS_DATABASE_URL": database_url}
    assert runner.invoke(audit_cli, ["migrate"], env=env).exit_code == 0
    store = AuditStore.from_url(database_url)
    store.record_hook_call(HookCallRecord("cli-hook", "https://ehr.example", SERVICE, 200, 3.0,
                                          recorded_at=datetime.now(UTC) - timedelta(days=100)))
    shown = runner.invoke(audit_cli, ["show", "cli-hook"], env=env)
    assert shown.exit_code == 0 and json.loads(shown.output)["client"] == "https://ehr.example"
    assert runner.invoke(audit_cli, ["show", "nothing-here"], env=env).exit_code == 1
    purged = runner.invoke(audit_cli, ["purge", "--older-than", "90"], env=env)
    assert purged.exit_code == 0 and "deleted 1" in purged.output
    assert runner.invoke(audit_cli, ["purge"], env={**env, "CART_CDS_AUDIT_RETENTION_DAYS": "30"}).exit_code == 0
    assert runner.invoke(audit_cli, ["purge", "--older-than", "0"], env=env).exit_code == 2
    store.engine.dispose()


def test_flask_g_is_request_scoped(store):
    app = hook_app(store, "meets-policy")
    with app.test_request_context("/"):
        hook_answered("h-g", OrderSignOutcome(Response(), timings={"x": 1}), {"cards": []})
        assert g.audit_answer.outcome.timings == {"x": 1}
    with app.test_request_context("/"):
        assert g.get("audit_answer") is None


def test_a_sqlite_file_is_written_in_write_ahead_log_mode_and_stays_durable(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: a commit is on disk
    engine.dispose()
