"""Property tests: whatever JSON (or bytes) a client sends, the service answers a 200 or a 4xx
OperationOutcome -- never a 500 and never a hang (each call must finish within the hypothesis deadline)."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service import create_app
from tests.cds_service.conftest import FEEDBACK_URL, HOOK_URL, protocol_settings, replaced
from tests.conftest import load_json
from tests.hypothesis_budget import examples
from tests.response_checks import check_response

VALID = load_json("examples/crd221-order-sign-request.json")
FEEDBACK = load_json("examples/cdshooks2-feedback-accepted.json")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)

FUZZ = settings(max_examples=examples(200), deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@cache
def client():
    test_client = create_app(protocol_settings()).test_client()
    test_client.get("/cds-services")  # warm caches so the deadline measures request handling only
    return test_client


def assert_handled(response) -> None:
    assert response.status_code != 500, response.get_data(as_text=True)
    body = json.loads(response.get_data())
    if response.status_code == 200:
        return body
    assert 400 <= response.status_code < 500
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"]
    return None


def paths(value, prefix=()):
    """Every (path) inside a JSON value, so a mutation can target any member at any depth."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, prefix + (index,))


VALID_PATHS = [p for p in paths(VALID) if p]


def post(url, body: bytes):
    return client().post(url, data=body, content_type="application/json")


@FUZZ
@given(json_values)
def test_any_json_body(value):
    assert_handled(post(HOOK_URL, json.dumps(value).encode()))


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes(data):
    assert_handled(post(HOOK_URL, data))


@FUZZ
@given(st.sampled_from(VALID_PATHS), json_values)
def test_valid_request_with_one_member_replaced(path, value):
    body = assert_handled(post(HOOK_URL, json.dumps(replaced(VALID, path, value)).encode()))
    if body is not None:
        check_response(body)


@FUZZ
@given(st.dictionaries(st.text(max_size=20), json_values, max_size=5))
def test_valid_request_with_unknown_members_added(extra):
    body = {**VALID, **{key: value for key, value in extra.items() if key not in VALID}}
    assert post(HOOK_URL, json.dumps(body).encode()).status_code == 200


@FUZZ
@given(st.sampled_from([p for p in paths(FEEDBACK) if p]), json_values)
def test_feedback_with_one_member_replaced(path, value):
    assert_handled(post(FEEDBACK_URL, json.dumps(replaced(FEEDBACK, path, value)).encode()))


def test_deeply_nested_json_is_a_400_not_a_crash():
    body = b'{"hook": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = post(HOOK_URL, body)
    assert response.status_code == 400
