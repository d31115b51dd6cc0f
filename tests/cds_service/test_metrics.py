"""``GET /metrics``: what the service counts, in the Prometheus text format, with no patient data.

Counters are process-wide (as in a worker), so each test compares the samples before and after what it
does. The multiprocess test runs ``cart-cds serve`` with two gunicorn workers on loopback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from cds_service import create_app
from cds_service.settings import Settings
from sandbox.ehr_signer import EhrSigner
from sandbox.recorded import RECORDED, load_dir
from tests.cds_service.conftest import HOOK_URL, TEST_ENVIRONMENT, protocol_settings
from tests.scenarios.test_sandbox_scenarios import REPLAY_BASE, _replay

REPO = Path(__file__).parents[2]
HOOKS = REPO / "sandbox" / "hooks"
SERVICE = "car-t-coverage"


def hook(name: str) -> dict:
    return json.loads((HOOKS / f"{name}.json").read_text(encoding="utf-8"))


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, from a Prometheus text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(snapshot: dict, name: str, **labels) -> float:
    return snapshot.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def client():
    return create_app(protocol_settings(allow_loopback_fhir=True)).test_client()


def scrape(client) -> tuple[str, dict]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")  # the Prometheus text format
    text = response.get_data(as_text=True)
    return text, samples(text)


def test_hook_calls_are_counted_by_service_verdict_and_status_with_their_duration(client):
    _, before = scrape(client)
    assert client.post(HOOK_URL, json=hook("abecma-meets-all-criteria-prefetch")).status_code == 200
    assert client.post(HOOK_URL, json=hook("dose-above-limit-prefetch")).status_code == 200
    assert client.post(HOOK_URL, json={"hook": "order-sign"}).status_code == 400
    assert client.post("/cds-services/no-such-service", json={}).status_code == 404
    _, after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("cart_cds_hook_calls_total", service=SERVICE, verdict="meets-policy", status="200") == 1
    assert delta("cart_cds_hook_calls_total", service=SERVICE, verdict="does-not-meet", status="200") == 1
    assert delta("cart_cds_hook_calls_total", service=SERVICE, verdict="none", status="400") == 1
    assert delta("cart_cds_hook_calls_total", service="other", verdict="none", status="404") == 1
    assert delta("cart_cds_hook_duration_seconds_count", service=SERVICE) == 3
    assert delta("cart_cds_prefetch_keys_total", key="patient", state="present") == 2
    assert delta("cart_cds_audit_writes_total", kind="hook-call", outcome="written") == 4
    assert value(after, "cart_cds_policy_version_info", policy="CP.PHAR.481", version="2026-05",
                 in_force_from="2026-03-26") == 1


def test_fhir_queries_are_counted_by_outcome(client, http_mock):
    _replay(http_mock, load_dir(RECORDED / "replay", REPLAY_BASE), [])
    _, before = scrape(client)
    assert client.post(HOOK_URL, json=hook("abecma-meets-all-criteria-no-prefetch")).status_code == 200
    assert client.post(HOOK_URL, json=hook("fhir-server-failure-no-prefetch")).status_code == 200
    _, after = scrape(client)
    ok = value(after, "cart_cds_fhir_queries_total", outcome="ok") - value(before, "cart_cds_fhir_queries_total", outcome="ok")
    failed = {labels: v - before.get((name, labels), 0) for (name, labels), v in after.items()
              if name == "cart_cds_fhir_queries_total" and dict(labels)["outcome"] != "ok" and v > before.get((name, labels), 0)}
    assert ok >= 10
    assert failed, "the failing FHIR server's queries are counted under their reason"
    assert value(after, "cart_cds_fhir_query_duration_seconds_count", outcome="ok") > value(
        before, "cart_cds_fhir_query_duration_seconds_count", outcome="ok")


def test_jwt_refusals_are_counted_by_reason(tmp_path):
    signer = EhrSigner.generate(iss="https://ehr.hospital.example", alg="ES384")
    settings = Settings(trusted_clients_file=signer.write_trusted_clients(tmp_path / "clients.yaml"),
                        public_base_url="https://cds.payer.example", database_url="sqlite://")
    client = create_app(settings).test_client()
    _, before = scrape(client)
    body = hook("abecma-meets-all-criteria-prefetch")
    client.post(HOOK_URL, json=body)
    client.post(HOOK_URL, json=body, headers=signer.authorization_header("https://cds.payer.example/elsewhere"))
    _, after = scrape(client)
    for reason in ("missing-token", "wrong-aud"):
        name = "cart_cds_jwt_refusals_total"
        assert value(after, name, reason=reason) - value(before, name, reason=reason) == 1, reason


def patient_strings(body: dict) -> set[str]:
    """Every string of the hook's patient data that is long enough to be recognisable."""
    found: set[str] = set()

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and len(value) >= 5:
            found.add(value)

    walk(body["prefetch"])
    walk(body["context"])
    found.add(body["hookInstance"])
    return found


def test_no_patient_data_reaches_any_label(client):
    """A hook full of patient data, a service id that is a patient's name: no label holds any of it."""
    body = hook("abecma-meets-all-criteria-prefetch")
    client.post(HOOK_URL, json=body)
    client.post("/cds-services/" + "DOE-JANE-1961-11-11", json=body)
    text, snapshot = scrape(client)
    labels = {v for _, pairs in snapshot for _, v in pairs}
    leaked = {s for s in patient_strings(body) if s in labels or f'"{s}"' in text}
    assert leaked == set()
    assert "DOE-JANE" not in text
    for (name, pairs) in snapshot:  # every other label of ours is a short code of the service's own
        for key, label in pairs:
            if name.startswith("cart_cds_") and key not in ("le", "policy", "version", "in_force_from"):
                assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", label), (name, key, label)


def _alive(pid: int) -> bool:
    """Whether a process (not ours: gunicorn's worker) still runs; an unreaped one counts as gone."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.loopback_http
def test_gunicorn_workers_are_summed_and_their_files_removed_at_exit(tmp_path):
    port = free_port()
    env = {**os.environ, **TEST_ENVIRONMENT, "CART_CDS_ALLOW_LOOPBACK_FHIR": "true",
           "CART_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/audit.db",
           "CART_CDS_BIND": f"127.0.0.1:{port}", "CART_CDS_WORKERS": "2", "CART_CDS_THREADS": "1", "TMPDIR": str(tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen([sys.executable, "-m", "cds_service", "serve"], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)
        [metrics_dir] = tmp_path.glob("cart-cds-metrics-*")
        body = hook("abecma-meets-all-criteria-prefetch")

        def send(n: int) -> None:
            for _ in range(n):
                requests.post(base + HOOK_URL, json=body, headers={"Connection": "close"}, timeout=10).raise_for_status()

        def scraped() -> float:
            return value(samples(requests.get(base + "/metrics", timeout=5).text), "cart_cds_hook_calls_total",
                         service=SERVICE, verdict="meets-policy", status="200")

        send(6)
        [served_by, *_] = {int(p.stem.rsplit("_", 1)[-1]) for p in metrics_dir.glob("counter_*.db")}
        os.kill(served_by, signal.SIGTERM)  # that worker exits; gunicorn starts another
        while _alive(served_by):
            assert time.monotonic() < deadline + 30
            time.sleep(0.1)
        send(3)  # answered by workers other than the one that exited
        assert [scraped() for _ in range(4)] == [9, 9, 9, 9], "every scrape sums all workers, exited ones included"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert not metrics_dir.exists()
