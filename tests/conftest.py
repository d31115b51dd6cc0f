"""Shared test fixtures. Every test runs offline: unplanned HTTP through ``requests`` fails the test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import responses
from hypothesis import settings

from tests.hypothesis_budget import THOROUGH_PROFILE

TESTS = Path(__file__).parent
REPO = TESTS.parent

# Hypothesis profiles, chosen with HYPOTHESIS_PROFILE: "ci" runs every property test's full budget
# (tests/hypothesis_budget.py; .ci/run selects it), "dev" (the default) a tenth of it, so the default run
# stays short. A test without its own budget runs the profile's max_examples.
settings.register_profile(THOROUGH_PROFILE, max_examples=100)
settings.register_profile("dev", max_examples=10)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


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
