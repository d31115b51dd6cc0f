"""The reusable response checker must catch what Inferno's CRD server tests would flag."""

from __future__ import annotations

import copy

import pytest

from tests.conftest import load_json
from tests.response_checks import COVERAGE_INFORMATION_URL, check_response, response_problems

APPOINTMENT_RESPONSE = load_json("examples/inferno-appointment-book-response.json")


def passing_response() -> dict:
    """Inferno's own passing fixture, with the card uuids CRD 2.2 requires and a 2.2 card topic."""
    body = copy.deepcopy(APPOINTMENT_RESPONSE)
    for index, card in enumerate(body["cards"]):
        card["uuid"] = f"0c0e7b5a-1d2f-4c8e-9b1a-00000000000{index}"
        card["source"]["topic"] = {"system": "http://terminology.hl7.org/CodeSystem/cdshooks-card-type",
                                   "code": "coverage-info"}
    return body


def test_inferno_fixture_with_uuids_passes():
    check_response(passing_response(), hook="appointment-book", expect_system_actions=True)


def test_crd_example_without_action_description_fails():
    problems = response_problems(load_json("examples/crd221-response-cards-and-coverage-info.json"))

    assert any("systemActions[0].description" in p for p in problems)
    assert any("suggestions[0].uuid" in p for p in problems)


def _mutated(change) -> list[str]:
    body = passing_response()
    change(body)
    return response_problems(body, hook="appointment-book", expect_system_actions=True)


def _subs(body) -> list:
    return body["systemActions"][0]["resource"]["extension"][0]["extension"]


@pytest.mark.parametrize("change, expected", [
    (lambda b: b["cards"][0].update(summary="x" * 140), "summary"),
    (lambda b: b["cards"][0].update(indicator="hard-stop"), "indicator"),
    (lambda b: b["cards"][0]["source"].pop("topic"), "topic"),
    (lambda b: b["cards"][0].pop("uuid"), "uuid"),
    (lambda b: b["cards"][0].update(detail=""), "null or empty"),
    (lambda b: b["cards"][0].update(links=[]), "null or empty"),
    (lambda b: b["cards"][1]["links"][0].update(appContext="x"), "appContext"),
    (lambda b: b["cards"][1]["links"][0].update(url="not a url"), "url"),
    (lambda b: b["cards"][0].update(suggestions=[{"label": "a", "uuid": "b4c1a3e0-0000-4000-8000-000000000001"}]),
     "selectionBehavior"),
    (lambda b: b["cards"][0].update(overrideReasons=[{"code": "c", "system": "s"}]), "display"),
    (lambda b: b.pop("systemActions"), "systemActions: required"),
    (lambda b: b["systemActions"][0].pop("description"), "description"),
    (lambda b: b["systemActions"][0].update(type="create"), "must be an update"),
    (lambda b: b["systemActions"][0]["resource"].update(start="tomorrow"), "does not parse as FHIR"),
    (lambda b: b["cards"][1].update(uuid=b["cards"][0]["uuid"]), "distinct uuids"),
    (lambda b: b.update(cards=None), "cards"),
    (lambda b: _subs(b).append({"url": "coverage-assertion-id", "valueString": "other"}), "coverage-assertion-id"),
    (lambda b: _subs(b).append({"url": "doc-purpose", "valueCode": "withpa"}), "q4"),
    (lambda b: [_subs(b).remove(s) for s in list(_subs(b)) if s["url"] == "satisfied-pa-id"], "q5"),
])
def test_checker_flags_each_violation(change, expected):
    assert any(expected in problem for problem in _mutated(change))


def test_update_must_target_a_draft_order_unchanged_but_for_the_extension():
    body = passing_response()
    resource = body["systemActions"][0]["resource"]
    original = {k: v for k, v in resource.items() if k != "extension"}
    bundle = {"resourceType": "Bundle", "entry": [{"resource": original}]}
    assert response_problems(body, hook="appointment-book", draft_orders=bundle) == []

    resource["status"] = "booked"
    assert any("resp-37" in p for p in response_problems(body, hook="appointment-book", draft_orders=bundle))
    other = {"resourceType": "Bundle", "entry": [{"resource": {**original, "id": "other"}}]}
    assert any("found-36" in p for p in response_problems(body, hook="appointment-book", draft_orders=other))


def test_extension_url_constant_matches_fixture():
    assert passing_response()["systemActions"][0]["resource"]["extension"][0]["url"] == COVERAGE_INFORMATION_URL
