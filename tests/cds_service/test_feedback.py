"""POST /cds-services/car-t-coverage/feedback: CDS Hooks 2.0 feedback validation, idempotent intake."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cds_service import create_app
from cds_service.audit.models import Feedback
from cds_service.feedback import FeedbackLog, parse_feedback
from tests.cds_service.conftest import FEEDBACK_URL, protocol_settings
from tests.conftest import load_json

ACCEPTED = load_json("examples/cdshooks2-feedback-accepted.json")
OVERRIDDEN = load_json("examples/cdshooks2-feedback-overridden.json")
OVERRIDDEN_WITH_REASON = load_json("examples/cdshooks2-feedback-overridden-with-reason.json")


def post(client, body, url=FEEDBACK_URL):
    return client.post(url, data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("body", [ACCEPTED, OVERRIDDEN, OVERRIDDEN_WITH_REASON])
def test_valid_feedback_examples_answer_200_empty_object(client, body):
    response = post(client, body)

    assert response.status_code == 200
    assert response.get_json() == {}


def test_feedback_items_are_parsed():
    (accepted,) = parse_feedback(ACCEPTED)
    (overridden,) = parse_feedback(OVERRIDDEN_WITH_REASON)

    assert accepted.outcome == "accepted"
    assert accepted.accepted_suggestions == ("e56e1945-20b3-4393-8503-a1a20fd73152",)
    assert accepted.outcome_timestamp == datetime(2021, 12, 11, 10, 5, 31, tzinfo=UTC)
    assert overridden.override_reason_code == ("https://example.com/cds-hooks/override-reason-system", "d7ecf885")
    assert overridden.has_user_comment


def test_duplicate_feedback_is_accepted_and_recorded_once(client, app):
    log = app.extensions["cart_cds.feedback_log"]
    batch = {"feedback": ACCEPTED["feedback"] * 2 + OVERRIDDEN["feedback"]}

    first = post(client, batch)
    again = post(client, ACCEPTED)

    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json() == {}
    assert len(log.record("car-t-coverage", parse_feedback(batch))) == 0


def _stored_feedback(app) -> list[dict]:
    """The stored item of every feedback row of the app's audit store, oldest first."""
    with Session(app.extensions["cart_cds.audit"].engine) as session:
        return [row.item for row in session.scalars(select(Feedback).order_by(Feedback.id))]


def test_a_repeated_feedback_item_is_answered_the_same_and_stored_once(client, app):
    first = post(client, ACCEPTED)
    again = post(client, {"feedback": ACCEPTED["feedback"] + OVERRIDDEN["feedback"]})

    assert first.get_json() == again.get_json() == {}
    assert [item["outcome"] for item in _stored_feedback(app)] == ["accepted", "overridden"]


def test_feedback_comment_is_not_stored_by_default(client, app):
    post(client, OVERRIDDEN_WITH_REASON)

    assert _stored_feedback(app) == [{
        "card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "overridden",
        "outcomeTimestamp": "2020-12-11T00:00:00Z",
        "overrideReason": {"reason": {"system": "https://example.com/cds-hooks/override-reason-system",
                                      "code": "d7ecf885"}},
    }]


def test_feedback_comment_is_stored_when_the_deployment_keeps_comments():
    app = create_app(protocol_settings(audit_feedback_comments=True))
    post(app.test_client(), OVERRIDDEN_WITH_REASON)

    [stored] = _stored_feedback(app)
    assert stored["overrideReason"]["userComment"] == OVERRIDDEN_WITH_REASON["feedback"][0]["overrideReason"]["userComment"]


def test_same_instant_in_another_offset_is_a_repeat():
    log = FeedbackLog()
    utc = parse_feedback(ACCEPTED)
    shifted = copy.deepcopy(ACCEPTED)
    shifted["feedback"][0]["outcomeTimestamp"] = "2021-12-11T11:05:31+01:00"

    assert len(log.record("car-t-coverage", utc)) == 1
    assert log.record("car-t-coverage", parse_feedback(shifted)) == ()


def test_feedback_log_is_bounded():
    log = FeedbackLog(capacity=2)
    items = [parse_feedback(_with(ACCEPTED, "card", f"card-{n}")) for n in range(3)]
    for item in items:
        log.record("car-t-coverage", item)

    assert log.record("car-t-coverage", items[0]) == items[0]  # the oldest was forgotten
    assert log.record("car-t-coverage", items[2]) == ()


def _with(body: dict, key: str, value) -> dict:
    body = copy.deepcopy(body)
    if value is None:
        del body["feedback"][0][key]
    else:
        body["feedback"][0][key] = value
    return body


INVALID = [
    ("not JSON", b"{", None),
    ("no feedback member", {}, "feedback"),
    ("feedback not an array", {"feedback": {}}, "feedback"),
    ("empty feedback array", {"feedback": []}, "feedback"),
    ("card missing", _with(ACCEPTED, "card", None), "feedback[0].card"),
    ("card empty", _with(ACCEPTED, "card", ""), "feedback[0].card"),
    ("outcome missing", _with(ACCEPTED, "outcome", None), "feedback[0].outcome"),
    ("outcome unknown", _with(ACCEPTED, "outcome", "ignored"), "feedback[0].outcome"),
    ("accepted without acceptedSuggestions", _with(ACCEPTED, "acceptedSuggestions", None),
     "feedback[0].acceptedSuggestions"),
    ("acceptedSuggestions empty", _with(ACCEPTED, "acceptedSuggestions", []), "feedback[0].acceptedSuggestions"),
    ("acceptedSuggestion without id", _with(ACCEPTED, "acceptedSuggestions", [{}]),
     "feedback[0].acceptedSuggestions[0].id"),
    ("overrideReason empty", _with(OVERRIDDEN, "overrideReason", {}), "feedback[0].overrideReason"),
    ("overrideReason reason without system", _with(OVERRIDDEN, "overrideReason", {"reason": {"code": "x"}}),
     "feedback[0].overrideReason.reason.system"),
    ("userComment not a string", _with(OVERRIDDEN, "overrideReason", {"userComment": 3}),
     "feedback[0].overrideReason.userComment"),
    ("outcomeTimestamp missing", _with(ACCEPTED, "outcomeTimestamp", None), "feedback[0].outcomeTimestamp"),
    ("outcomeTimestamp without offset", _with(ACCEPTED, "outcomeTimestamp", "2021-12-11T10:05:31"),
     "feedback[0].outcomeTimestamp"),
    ("outcomeTimestamp a date only", _with(ACCEPTED, "outcomeTimestamp", "2021-12-11"),
     "feedback[0].outcomeTimestamp"),
    ("outcomeTimestamp impossible", _with(ACCEPTED, "outcomeTimestamp", "2021-13-11T10:05:31Z"),
     "feedback[0].outcomeTimestamp"),
]


@pytest.mark.parametrize("case, body, path", INVALID, ids=[row[0] for row in INVALID])
def test_invalid_feedback_gets_400_naming_the_path(client, case, body, path):
    response = client.post(FEEDBACK_URL, data=body if isinstance(body, bytes) else json.dumps(body),
                           content_type="application/json")

    assert response.status_code == 400
    (issue,) = response.get_json()["issue"]
    assert issue.get("expression") == ([path] if path else None)


def test_feedback_for_unknown_service_is_404(client):
    assert post(client, ACCEPTED, "/cds-services/other/feedback").status_code == 404


def test_feedback_needs_json_content_type(client):
    response = client.post(FEEDBACK_URL, data=json.dumps(ACCEPTED), content_type="text/plain")
    assert response.status_code == 415
