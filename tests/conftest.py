"""Shared test fixtures. Every test runs offline: unplanned HTTP through ``requests`` fails the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses

TESTS = Path(__file__).parent
REPO = TESTS.parent


def load_json(path: str | Path):
    """Load a JSON fixture; relative paths are resolved against ``tests/``."""
    path = Path(path)
    if not path.is_absolute():
        path = TESTS / path
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def http_mock(request):
    """A ``responses`` mock active in every test: register the FHIR answers a test expects; any other
    request raises ConnectionError. Tests marked ``loopback_http`` may also reach 127.0.0.1."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        if request.node.get_closest_marker("loopback_http"):
            mock.add_passthru("http://127.0.0.1")
            mock.add_passthru("http://localhost")
        yield mock
