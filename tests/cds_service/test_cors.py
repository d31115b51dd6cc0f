"""CORS: allow-listed origins only; preflight answered before authentication; headers on POST too."""

from __future__ import annotations

import json

from flask import abort

from cds_service import create_app
from tests.cds_service.conftest import HOOK_URL, protocol_settings

ALLOWED = "https://ehr.example.org"
PREFLIGHT = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type"}


def test_preflight_from_allowed_origin(client):
    response = client.options(HOOK_URL, headers=PREFLIGHT)

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed_headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    assert "Origin" in response.headers["Vary"]


def test_preflight_from_other_origin_gets_no_cors_headers(client):
    response = client.options(HOOK_URL, headers={**PREFLIGHT, "Origin": "https://evil.example"})

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Headers" not in response.headers


def test_no_origin_is_allowed_by_default():
    client = create_app(protocol_settings()).test_client()

    response = client.options(HOOK_URL, headers=PREFLIGHT)

    assert "Access-Control-Allow-Origin" not in response.headers


def test_post_response_carries_cors_headers(client, order_sign_request):
    response = client.post(HOOK_URL, data=json.dumps(order_sign_request), content_type="application/json",
                           headers={"Origin": ALLOWED})

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Access-Control-Allow-Methods" not in response.headers  # preflight-only headers


def test_error_responses_carry_cors_headers_so_browsers_can_read_them(client):
    response = client.post(HOOK_URL, data="{", content_type="application/json", headers={"Origin": ALLOWED})

    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_discovery_carries_cors_headers(client):
    assert client.get("/cds-services", headers={"Origin": ALLOWED}).headers["Access-Control-Allow-Origin"] == ALLOWED


def test_preflight_is_answered_before_later_request_guards(settings):
    """An authentication guard registered after create_app's hooks never sees the preflight."""
    app = create_app(settings)
    app.before_request(lambda: abort(401))
    client = app.test_client()

    assert client.options(HOOK_URL, headers=PREFLIGHT).status_code == 204
    assert client.get("/cds-services", headers={"Origin": ALLOWED}).status_code == 401
