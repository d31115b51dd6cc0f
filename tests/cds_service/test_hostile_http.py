"""Hostile input at the HTTP layer and the known crash classes of issue 17: every answer is a 4xx JSON
OperationOutcome naming what is wrong, never a 500 or an HTML page; a 500 that does happen is logged
with its code location and no values."""

from __future__ import annotations

import io
import json
import logging
import socket
from pathlib import Path

import pytest

from cds_service import create_app, feedback
from cds_service.log_safety import configure_logging
from cds_service.settings import Settings
from tests.cds_service.served import served

HOOK = "/cds-services/car-t-coverage"
SANDBOX = Path(__file__).parents[2] / "sandbox" / "hooks"
OPEN = {"CART_CDS_AUTH_DISABLED": "true", "CART_CDS_DATABASE_URL": "sqlite://"}


@pytest.fixture(scope="module")
def client():
    return create_app(Settings(auth_disabled=True, database_url="sqlite://", allow_loopback_fhir=True)).test_client()


@pytest.fixture
def hook_body():
    return json.loads((SANDBOX / "abecma-meets-all-criteria-prefetch.json").read_text(encoding="utf-8"))


def draft_order(body: dict) -> dict:
    return body["context"]["draftOrders"]["entry"][0]["resource"]


def assert_400_naming(response, field: str):
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    [expression] = response.get_json()["issue"][0]["expression"]
    assert expression.startswith(f"context.draftOrders.entry[0].resource.{field}")  # the element or an item of it


@pytest.mark.parametrize("value", [None, 5, "", "a b", "x" * 65])
def test_draft_order_without_a_usable_id_is_400_naming_it(client, hook_body, value):
    """CRD found-36: context resources carry ids; the coverage-information update must reuse it."""
    if value is None:
        del draft_order(hook_body)["id"]
    else:
        draft_order(hook_body)["id"] = value
    assert_400_naming(client.post(HOOK, json=hook_body), "id")


@pytest.mark.parametrize("field, value", [
    ("extension", {"url": "http://example.org/x"}), ("extension", "x"), ("extension", [5]),
    ("contained", 5), ("contained", True), ("contained", {"resourceType": "Medication"}), ("contained", [{"id": "m"}]),
    ("medicationReference", "Medication/m"), ("medicationReference", ["Medication/m"]), ("medicationReference", 5),
    ("medicationCodeableConcept", "Abecma"),
])
def test_draft_order_element_of_the_wrong_json_type_is_400_naming_it(client, hook_body, field, value):
    draft_order(hook_body)[field] = value
    assert_400_naming(client.post(HOOK, json=hook_body), field)


def _prefetched(body: dict, resource_type: str):
    for value in body["prefetch"].values():
        for entry in (value or {}).get("entry", ()) if (value or {}).get("resourceType") == "Bundle" else ():
            if entry["resource"]["resourceType"] == resource_type:
                yield entry["resource"]


@pytest.mark.parametrize("scenario", ["cns-involvement", "age-under-18-birthday-tomorrow", "abecma-ichra-member"])
@pytest.mark.parametrize("member, value", [("code", {"value": "C90.00"}), ("code", ["C90.00"]), ("display", ["Myeloma"]),
                                           ("system", 5)])
def test_coding_members_of_the_wrong_type_are_judged_not_crashed(client, scenario, member, value):
    """A Condition coding whose code is an object or list, or whose display is a list, reached card text
    building (a 500). Such a member is not a code: the coding matches nothing, the call is judged."""
    body = json.loads((SANDBOX / f"{scenario}-prefetch.json").read_text(encoding="utf-8"))
    for condition in _prefetched(body, "Condition"):
        for coding in condition["code"]["coding"]:
            coding[member] = value
    response = client.post(HOOK, json=body)
    assert response.status_code == 200
    verdicts = [card["extension"]["cart-cds.decision"]["verdict"] for card in response.get_json()["cards"]
                if "cart-cds.decision" in card.get("extension", {})]
    assert verdicts
    if member != "display":  # no readable diagnosis code: the diagnosis cannot be met
        assert "meets-policy" not in verdicts


@pytest.mark.parametrize("contained", [5, True, {"resourceType": "Medication", "id": "m"}])
def test_prefetched_order_with_contained_of_the_wrong_type_is_judged(client, hook_body, contained):
    for request in _prefetched(hook_body, "MedicationRequest"):
        request["contained"] = contained
        request["medicationReference"] = {"reference": "#m"}
        request.pop("medicationCodeableConcept", None)
    assert client.post(HOOK, json=hook_body).status_code == 200


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_feedback_timestamp_beyond_the_calendar_is_400_naming_it(client, timestamp):
    body = {"feedback": [{"card": "9b2f0f4e-41d2-4f8c-bb7f-0d6f6e0f2c11", "outcome": "overridden",
                          "outcomeTimestamp": timestamp}]}
    response = client.post(HOOK + "/feedback", json=body)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["feedback[0].outcomeTimestamp"]


def test_an_unexpected_error_is_logged_with_its_location_and_no_values(client, monkeypatch):
    def broken(*_args):
        raise KeyError("Jane Doe 1959-03-02")

    monkeypatch.setattr(feedback, "validate_json", broken)
    stream = io.StringIO()
    handler = configure_logging("INFO", stream=stream)
    try:
        response = client.post(HOOK + "/feedback", json={"feedback": []})
    finally:
        logging.getLogger().removeHandler(handler)
    assert response.status_code == 500 and response.get_json()["resourceType"] == "OperationOutcome"
    line = next(json.loads(text) for text in stream.getvalue().splitlines() if "unhandled exception" in text)
    assert line["exception"]["types"] == ["KeyError"]
    assert any(frame.startswith("test_hostile_http.py:") and "in broken" in frame for frame in line["exception"]["frames"])
    assert "Jane" not in stream.getvalue() and "1959" not in stream.getvalue()


# --- what gunicorn answers itself, over a real socket ---


def _raw_exchange(base: str, request: bytes) -> tuple[int, dict, bytes]:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body[: int(headers.get("Content-Length", len(body)))]


@pytest.fixture(scope="module")
def server():
    with served(OPEN, workers=1) as base:
        yield base


@pytest.mark.slow
@pytest.mark.loopback_http
@pytest.mark.parametrize("request_bytes, status", [
    (b"POST " + HOOK.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n", 431),
    (b"BLAH\x00 / HTTP/1.1\r\n\r\n", 400),
])
def test_errors_gunicorn_answers_itself_are_json(server, request_bytes, status):
    got, headers, body = _raw_exchange(server, request_bytes)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["resourceType"] == "OperationOutcome"
    assert b"aaaa" not in body and b"vvvv" not in body


def test_feedback_with_more_items_than_a_client_sends_is_413_naming_it(client):
    item = {"card": "9b2f0f4e-41d2-4f8c-bb7f-0d6f6e0f2c11", "outcome": "overridden",
            "outcomeTimestamp": "2026-11-24T10:15:00Z"}
    assert client.post(HOOK + "/feedback", json={"feedback": [item] * 100}).status_code == 200
    response = client.post(HOOK + "/feedback", json={"feedback": [item] * 101})
    assert response.status_code == 413
    assert response.get_json()["issue"][0]["expression"] == ["feedback"]
