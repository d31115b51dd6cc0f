"""Fixtures for the service tests: an app built from explicit settings, its test client, and requests."""

from __future__ import annotations

import copy

import pytest

from cds_service import create_app
from cds_service.settings import Settings
from tests.conftest import load_json

HOOK_URL = "/cds-services/car-t-coverage"
FEEDBACK_URL = HOOK_URL + "/feedback"


@pytest.fixture
def settings() -> Settings:
    return Settings(cors_origins=("https://ehr.example.org",), payer_name="Example Health Plan")


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def order_sign_request() -> dict:
    """A complete, valid CRD 2.2 order-sign request (a fresh copy each test may change)."""
    return copy.deepcopy(load_json("examples/crd221-order-sign-request.json"))
