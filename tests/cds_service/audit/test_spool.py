"""An audit trail with no holes: the store is taken away mid-run (a SQLite file locked by another
writer; PostgreSQL refusing connections when ``CART_CDS_TEST_POSTGRES_URL`` is set), hooks keep being
answered, and afterwards every answered hook is in the store, once, in order."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sqlite3
import time
import uuid

import pytest
import requests
from sqlalchemy import create_engine

from cds_service.audit import AuditSpool, AuditStore, AuditTrail, HookCallRecord
from cds_service.audit.capture import TRAIL_KEY
from cds_service.audit.store import AuditStoreUnavailable, make_engine
from tests.cds_service.audit.test_audit_store import SERVICE, hook_app
from tests.cds_service.served import served
from tests.cds_service.store_backends import POSTGRES_URL

HOOK = f"/cds-services/{SERVICE}"


@contextlib.contextmanager
def outage(database_url: str):
    """The audit store unreachable for the duration: a SQLite file held by another writer's exclusive
    lock, or a PostgreSQL database that refuses connections (existing ones terminated)."""
    if database_url.startswith("sqlite"):
        holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    admin = create_engine(POSTGRES_URL.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = POSTGRES_URL.rsplit("/", 1)[1]
    with admin.connect() as connection:
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        connection.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        try:
            yield
        finally:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    admin.dispose()


def hook_instances_in(store: AuditStore, hook_instances: list[str]) -> list[list[int]]:
    return [[row["id"] for row in store.show(h)] for h in hook_instances]


def test_store_outage_mid_run_leaves_no_hole(store, database_url, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    spool = AuditSpool(tmp_path / "spool", max_records=100)
    app = hook_app(store, "meets-policy", spool=spool)
    client, trail = app.test_client(), app.extensions[TRAIL_KEY]
    answered = []

    def call():
        hook_instance = str(uuid.uuid4())
        assert client.post(HOOK, json={"hookInstance": hook_instance}).status_code == 200
        answered.append(hook_instance)

    for _ in range(3):
        call()
    with outage(database_url):
        for _ in range(8):
            call()
        state = trail.state()
        assert state["status"] == "degraded" and state["spooledRecords"] == 8
    call()  # the store is back, but this worker's records wait in order behind the spooled ones
    assert trail.replay() is True
    rows = hook_instances_in(store, answered)
    assert all(len(ids) == 1 for ids in rows)  # every answered hook, exactly once
    ids = [ids[0] for ids in rows]
    assert ids == sorted(ids)  # in the order they were answered
    assert trail.state() == {"status": "ready", "auditStore": "reachable", "spooledRecords": 0}
    audited = [r for r in caplog.records if r.getMessage() == "hook call audited"]
    assert len(audited) == 3  # the log claims an audit only for the writes the store took at once
    assert any(r.getMessage() == "spooled audit records replayed" and r.count == 9 for r in caplog.records)


def test_an_interrupted_replay_writes_each_record_once(store, tmp_path):
    store_down = AuditStore(make_engine(f"sqlite:///{tmp_path}/missing/audit.db"))
    spool = AuditSpool(tmp_path / "spool", max_records=100)
    down = AuditTrail(store_down, spool)
    names = [f"h-{i}" for i in range(5)]
    for name in names:
        assert down.hook_call(HookCallRecord(name, None, SERVICE, 200, 1.0))[0] == "spooled"
    calls = []

    def fail_on_the_fourth(record, *, replay_id):
        calls.append(record.hook_instance)
        if len(calls) == 4:
            raise AuditStoreUnavailable("gone again")
        return store.record_hook_call(record, replay_id=replay_id)

    interrupted = AuditTrail(store, spool)
    store_write = store.record_hook_call
    store.record_hook_call = fail_on_the_fourth
    assert interrupted.replay() is False
    store.record_hook_call = store_write
    assert interrupted.replay() is True
    assert [len(ids) for ids in hook_instances_in(store, names)] == [1] * 5


def _spool_and_die(spool_dir: str, names: list[str]) -> None:
    trail = AuditTrail(AuditStore(make_engine(f"sqlite:///{spool_dir}/missing/audit.db")), AuditSpool(spool_dir, 100))
    for name in names:
        trail.hook_call(HookCallRecord(name, None, SERVICE, 200, 1.0))
    os.kill(os.getpid(), signal.SIGKILL)  # no clean shutdown: only what was fsynced survives


def test_the_spool_of_a_killed_worker_is_replayed_by_a_live_one(store, tmp_path):
    names = [f"killed-{i}" for i in range(3)]
    worker = multiprocessing.get_context("spawn").Process(target=_spool_and_die, args=(str(tmp_path), names))
    worker.start()
    worker.join(timeout=60)
    assert worker.exitcode == -signal.SIGKILL
    survivor = AuditTrail(store, AuditSpool(tmp_path, 100))
    assert survivor.spool.pending() == 3
    assert survivor.replay() is True
    assert [len(ids) for ids in hook_instances_in(store, names)] == [1, 1, 1]
    assert survivor.spool.pending() == 0 and not list(tmp_path.glob("audit-spool-*"))


def test_a_full_spool_withholds_the_answer(tmp_path, caplog):
    store = AuditStore(make_engine(f"sqlite:///{tmp_path}/missing/audit.db"))
    client = hook_app(store, "meets-policy", spool=AuditSpool(tmp_path / "spool", max_records=2)).test_client()
    statuses = [client.post(HOOK, json={"hookInstance": f"h-{i}"}).status_code for i in range(3)]
    assert statuses == [200, 200, 503]
    assert any(r.getMessage() == "audit record not written; answer withheld" for r in caplog.records)


# --- the real service: /readyz, and several gunicorn workers losing their store mid-run ---


@pytest.mark.slow
@pytest.mark.loopback_http
def test_served_workers_lose_the_store_mid_run_and_every_answered_hook_is_stored(database_url, tmp_path):
    from tests.cds_service.test_hostile_http import SANDBOX

    body = (SANDBOX / "abecma-meets-all-criteria-prefetch.json").read_text(encoding="utf-8")
    environment = {"CART_CDS_AUTH_DISABLED": "true", "CART_CDS_DATABASE_URL": database_url,
                   "CART_CDS_ALLOW_LOOPBACK_FHIR": "true", "CART_CDS_AUDIT_SPOOL_DIR": str(tmp_path / "spool")}
    AuditStore.from_url(database_url).close()  # migrated before the workers start
    answered = []
    with served(environment, workers=3) as base, requests.Session() as session:
        def call():
            hook_instance = str(uuid.uuid4())
            response = session.post(base + HOOK, data=body.replace(
                '"hookInstance": "', f'"hookInstance": "{hook_instance}", "x": "'), timeout=30,
                headers={"Content-Type": "application/json", "Connection": "close"})
            assert response.status_code == 200
            answered.append(hook_instance)

        for _ in range(4):
            call()
        with outage(database_url):
            for _ in range(10):
                call()
            readiness = session.get(base + "/readyz", timeout=10)
            assert readiness.status_code == 503 and readiness.json()["status"] == "degraded"
            assert session.get(base + "/healthz", timeout=10).status_code == 200  # alive, not ready
        for _ in range(4):
            call()
        deadline = time.monotonic() + 60
        while session.get(base + "/readyz", timeout=10).status_code != 200:  # the workers replay
            assert time.monotonic() < deadline, "the spool was not replayed"
            time.sleep(0.5)
    check = AuditStore.from_url(database_url)
    try:
        assert [len(ids) for ids in hook_instances_in(check, answered)] == [1] * len(answered)
    finally:
        check.close()


def test_readyz_is_degraded_while_records_wait_and_healthz_stays_up(tmp_path):
    from cds_service import create_app
    from cds_service.settings import Settings
    from tests.cds_service.test_hostile_http import SANDBOX

    database_url = f"sqlite:///{tmp_path}/audit.db"
    app = create_app(Settings(auth_disabled=True, database_url=database_url, allow_loopback_fhir=True,
                              audit_spool_dir=tmp_path / "spool"))
    client = app.test_client()
    body = (SANDBOX / "abecma-meets-all-criteria-prefetch.json").read_text(encoding="utf-8")
    assert client.get("/readyz").get_json() == {"status": "ready", "auditStore": "reachable", "spooledRecords": 0}
    with outage(database_url):
        assert client.post(HOOK, data=body, content_type="application/json").status_code == 200
        degraded = client.get("/readyz")
        assert degraded.status_code == 503 and degraded.get_json()["spooledRecords"] == 1
        assert client.get("/healthz").status_code == 200
    assert app.extensions[TRAIL_KEY].replay() is True
    assert client.get("/readyz").status_code == 200
