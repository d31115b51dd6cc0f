"""Every sandbox hook through the real service, compared with the scenario's expected decision.

The expected files (sandbox/expected/*.json) were written by a clinical reviewer from the seed policies,
not derived from the engine, so these tests are an independent oracle for the whole pipeline: request
parsing, record retrieval (prefetch, or fallback queries answered from the recorded responses), mapping,
policy evaluation and rendering. Each response also passes the CDS Hooks / Inferno response checks and the
CRD coverage-information invariants.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
import responses

from cds_service import create_app
from sandbox.expectations import expected_for, mismatches, scenario_of_hook
from sandbox.recorded import RECORDED, key_for_url, load_dir
from tests.cds_service.conftest import HOOK_URL, protocol_settings
from tests.crd_checks import check_coverage_information
from tests.response_checks import check_response

HOOKS = sorted((Path(__file__).parents[2] / "sandbox" / "hooks").glob("*.json"))
REPLAY_BASE = "http://127.0.0.1:8090/fhir"
REPLAY_URLS = re.compile(re.escape(REPLAY_BASE) + r"(/.*|\?.*)?$")
AS_OF = date(2026, 11, 24)

# Scenarios whose expected decision (written from the policy) the service does not give yet, because the
# fix of their class of issue 14 is in progress: the one list of them (the demo test reads it too). Strict
# xfails: when a fix lands the scenario passes, the test turns red, and its entry goes.
KNOWN_WRONG: dict[str, str] = {}


def _hook_params():
    for hook in HOOKS:
        reason = KNOWN_WRONG.get(scenario_of_hook(hook))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(hook, id=hook.stem, marks=marks)


@pytest.fixture(scope="module")
def client():
    settings = protocol_settings(allow_loopback_fhir=True)
    return create_app(settings, as_of=AS_OF).test_client()


@pytest.fixture(scope="module")
def recorded() -> dict[str, dict]:
    return load_dir(RECORDED / "replay", REPLAY_BASE)


def _replay(http_mock: responses.RequestsMock, recorded: dict[str, dict], unplanned: list[str]) -> None:
    """Answer every GET under the replay base from the recorded responses; anything else is noted."""

    def answer(request):
        key = key_for_url("GET", request.url, REPLAY_BASE)
        if key not in recorded:
            unplanned.append(key or "off-base request")
            return 599, {}, ""
        entry = recorded[key]
        return entry["status"], {"Content-Type": "application/fhir+json"}, json.dumps(entry["body"])

    http_mock.add_callback(responses.GET, REPLAY_URLS, callback=answer)


@pytest.mark.parametrize("hook_file", list(_hook_params()))
def test_scenario_decision_matches_expected(hook_file, client, recorded, http_mock):
    hook = json.loads(hook_file.read_text(encoding="utf-8"))
    unplanned: list[str] = []
    _replay(http_mock, recorded, unplanned)

    response = client.post(HOOK_URL, json=hook)

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    check_response(body, hook="order-sign", draft_orders=hook["context"]["draftOrders"])
    check_coverage_information(body, hook["context"]["draftOrders"])
    assert unplanned == [], f"requests with no recorded response: {unplanned}"
    problems = mismatches(expected_for(scenario_of_hook(hook_file)), body)
    assert problems == [], "\n".join(problems)


def test_audit_row_keeps_retrieval_outcomes_and_stage_timings(recorded, http_mock):
    """CRD found-37: the audit trail holds what the response cannot show, for disputes."""
    app = create_app(protocol_settings(allow_loopback_fhir=True), as_of=AS_OF)
    _replay(http_mock, recorded, [])
    hook = json.loads((HOOKS[0].parent / "fhir-server-failure-no-prefetch.json").read_text(encoding="utf-8"))

    assert app.test_client().post(HOOK_URL, json=hook).status_code == 200

    [row] = app.extensions["cart_cds.audit"].show(hook["hookInstance"])
    assert row["retrieval"]["Observation"]["state"] == "failed"
    assert row["retrieval"]["Condition"] == {"state": "complete"}
    assert set(row["timings"]) >= {"retrieval_ms", "evaluation_ms"}
