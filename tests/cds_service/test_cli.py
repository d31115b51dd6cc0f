"""The cart-cds command line: discovery, serve (gunicorn / --dev), settings errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner
from flask import Flask

from cds_service import cli
from cds_service.discovery import discovery_document
from tests.cds_service.conftest import TEST_ENVIRONMENT


@pytest.fixture(autouse=True)
def gc_tuning(monkeypatch):
    """``serve`` tunes the process's garbage collector: record the call instead of tuning pytest's."""
    calls = []
    monkeypatch.setattr(cli, "tune_garbage_collection", lambda: calls.append("tuned"))
    return calls


def run(*args, env=None):
    return CliRunner().invoke(cli.main, list(args), env={**TEST_ENVIRONMENT, **(env or {})}, catch_exceptions=False)


def test_discovery_prints_the_discovery_document():
    result = run("discovery")

    assert result.exit_code == 0
    assert json.loads(result.output) == discovery_document()


def test_serve_runs_gunicorn_with_settings(monkeypatch, gc_tuning):
    started = []
    monkeypatch.setattr(cli.GunicornApp, "run", lambda self: started.append((self, list(gc_tuning))))

    result = run("serve", env={"CART_CDS_BIND": "0.0.0.0:9000", "CART_CDS_WORKERS": "3", "CART_CDS_THREADS": "5"})

    assert result.exit_code == 0
    ((server, tuned_before_start),) = started
    assert tuned_before_start == ["tuned"]  # in the master, so the forked workers inherit it
    assert server.cfg.bind == ["0.0.0.0:9000"]
    assert server.cfg.workers == 3 and server.cfg.threads == 5
    assert server.cfg.worker_class_str == "gthread"
    assert server.cfg.timeout > 5  # longer than the hook budget
    assert server.load().test_client().get("/cds-services").status_code == 200


def test_serve_options_override_settings(monkeypatch):
    started = []
    monkeypatch.setattr(cli.GunicornApp, "run", lambda self: started.append(self))

    run("serve", "--bind", "127.0.0.1:9100", "--workers", "1")

    assert started[0].cfg.bind == ["127.0.0.1:9100"] and started[0].cfg.workers == 1


def test_serve_dev_uses_flask_reloader(monkeypatch):
    calls = []
    monkeypatch.setattr(Flask, "run", lambda self, **kwargs: calls.append(kwargs))

    result = run("serve", "--dev", env={"CART_CDS_BIND": "[::1]:8081"})

    assert result.exit_code == 0
    assert calls == [{"host": "::1", "port": 8081, "debug": True, "use_reloader": True}]


def test_bad_setting_stops_serve_with_a_message_naming_it():
    result = CliRunner().invoke(cli.main, ["serve"], env={"CART_CDS_WORKERS": "lots"})

    assert result.exit_code != 0
    assert "CART_CDS_WORKERS" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.loopback_http
def test_cart_cds_serve_answers_discovery_over_http():
    port = _free_port()
    env = {**os.environ, **TEST_ENVIRONMENT, "CART_CDS_BIND": f"127.0.0.1:{port}", "CART_CDS_WORKERS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "cds_service", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/cds-services", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["services"][0]["id"] == "car-t-coverage"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_missing_trusted_clients_file_stops_serve_with_a_message():
    result = CliRunner().invoke(cli.main, ["serve"], env={"CART_CDS_AUTH_DISABLED": "false",
                                                          "CART_CDS_DATABASE_URL": "sqlite://"})

    assert result.exit_code == 1
    assert "CART_CDS_TRUSTED_CLIENTS_FILE" in result.output and "Traceback" not in result.output
