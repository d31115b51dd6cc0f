"""Fixtures for the service tests: an app built from explicit settings, its test client, and requests."""

from __future__ import annotations

import copy

import pytest

from cds_service import create_app
from cds_service.settings import Settings
from tests.conftest import load_json

HOOK_URL = "/cds-services/car-t-coverage"
FEEDBACK_URL = HOOK_URL + "/feedback"


# What the protocol tests run with: client JWT checks off (tested in tests/cds_service/auth/) and an
# in-memory audit store, so the tests need no key material and write no files.
TEST_ENVIRONMENT = {"CART_CDS_AUTH_DISABLED": "true", "CART_CDS_DATABASE_URL": "sqlite://"}


def protocol_settings(**values) -> Settings:
    return Settings(auth_disabled=True, database_url="sqlite://", **values)


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
