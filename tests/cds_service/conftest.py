"""Fixtures for the service tests: an app built from explicit settings, its test client, and requests."""

from __future__ import annotations

import copy

import pytest

from cds_service import create_app, metrics
from cds_service.settings import Settings
from tests.conftest import load_json

HOOK_URL = "/cds-services/car-t-coverage"
FEEDBACK_URL = HOOK_URL + "/feedback"


# What the protocol tests run with: client JWT checks off (tested in tests/cds_service/auth/) and an
# in-memory audit store, so the tests need no key material and write no files.
# A production start also needs the payers the endpoint serves (CRD hook-13): the sandbox payer.
TEST_ENVIRONMENT = {"CART_CDS_AUTH_DISABLED": "true", "CART_CDS_DATABASE_URL": "sqlite://",
                    "CART_CDS_PAYER_IDENTIFIERS": "https://payers.example.org/payer-id|SANDBOX-HP",
                    "CART_CDS_FHIR_OPEN_HOSTS": "127.0.0.1"}


def protocol_settings(**values) -> Settings:
    """The sandbox's replay FHIR server (loopback) is an open test server: its hooks send no fhirAuthorization."""
    return Settings(**{"auth_disabled": True, "database_url": "sqlite://", "fhir_open_hosts": ("127.0.0.1",), **values})


# Metrics of this test process are in-process ones: the library picks its mode at first use, and a test
# that runs ``cart-cds serve`` here must not be that first use (it sets PROMETHEUS_MULTIPROC_DIR).
metrics.policies_loaded(())


@pytest.fixture(autouse=True)
def no_metrics_directory_left(monkeypatch):
    """``cart-cds serve`` points PROMETHEUS_MULTIPROC_DIR at a directory for its workers; a test that runs
    it in this process must not leave the variable to the tests after it."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


@pytest.fixture
def settings() -> Settings:
    return protocol_settings(cors_origins=("https://ehr.example.org",), payer_name="Example Health Plan")


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


def replaced(body, path: tuple, value):
    """A deep copy of a JSON ``body`` with the member at ``path`` (keys and indexes) set to ``value``."""
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


@pytest.fixture
def order_sign_request() -> dict:
    """A complete, valid CRD 2.2 order-sign request (a fresh copy each test may change)."""
    return copy.deepcopy(load_json("examples/crd221-order-sign-request.json"))
