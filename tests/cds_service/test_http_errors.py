"""Transport-level errors: every non-2xx is an OperationOutcome; unexpected exceptions never leak."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest

from cds_service import create_app
from cds_service.order_sign import OrderSignOutcome
from cds_service.response.responses import Response
from tests.cds_service.conftest import HOOK_URL, TEST_ENVIRONMENT, protocol_settings


def assert_outcome(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    return body


def test_unknown_service_is_404(client, order_sign_request):
    response = client.post("/cds-services/prior-auth", data=json.dumps(order_sign_request),
                           content_type="application/json")
    assert_outcome(response, 404, "not-found")


def test_unknown_path_is_404(client):
    assert_outcome(client.get("/nowhere"), 404, "not-found")


@pytest.mark.parametrize("method, url", [("get", HOOK_URL), ("put", HOOK_URL), ("delete", HOOK_URL),
                                         ("post", "/cds-services"), ("get", HOOK_URL + "/feedback")])
def test_wrong_method_is_405_with_allow_header(client, method, url):
    response = getattr(client, method)(url)

    assert_outcome(response, 405, "not-supported")
    assert "POST" in response.headers["Allow"] or "GET" in response.headers["Allow"]


def test_body_over_the_limit_is_413(order_sign_request):
    client = create_app(protocol_settings(max_body_bytes=1000)).test_client()
    body = json.dumps(order_sign_request)
    assert len(body) > 1000

    assert_outcome(client.post(HOOK_URL, data=body, content_type="application/json"), 413, "too-long")


def test_default_body_limit_is_10_mb(client, order_sign_request):
    order_sign_request["padding"] = "x" * (10 * 1024 * 1024)
    response = client.post(HOOK_URL, data=json.dumps(order_sign_request), content_type="application/json")

    assert_outcome(response, 413, "too-long")


def test_unexpected_exception_is_a_generic_500_without_internals(settings, monkeypatch, order_sign_request, caplog):
    def broken(request, **kwargs):
        raise RuntimeError("secret detail Patient/123 token=abc")

    monkeypatch.setattr("cds_service.routes.handle_order_sign", broken)
    client = create_app(settings).test_client()

    with caplog.at_level(logging.ERROR):
        response = client.post(HOOK_URL, data=json.dumps(order_sign_request), content_type="application/json")

    body = assert_outcome(response, 500, "exception")
    text = response.get_data(as_text=True)
    assert "secret" not in text and "RuntimeError" not in text and "Traceback" not in text
    assert "internal error" in body["issue"][0]["diagnostics"]
    (record,) = [r for r in caplog.records if r.name == "cds_service.errors"]
    assert record.reason == "RuntimeError" and record.route == "/cds-services/<service_id>"
    assert "secret" not in caplog.text


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_create_app_reads_settings_from_environment(monkeypatch):
    for name, value in {**TEST_ENVIRONMENT, "CART_CDS_MAX_BODY_BYTES": "2048"}.items():
        monkeypatch.setenv(name, value)
    app = create_app()
    assert app.config["MAX_CONTENT_LENGTH"] == 2048


def test_create_app_passes_a_fixed_decision_date_to_the_use_case(settings, monkeypatch, order_sign_request):
    seen = []
    monkeypatch.setattr("cds_service.routes.handle_order_sign",
                        lambda request, service, as_of: seen.append(as_of) or OrderSignOutcome(Response()))
    client = create_app(settings, as_of=date(2026, 11, 24)).test_client()

    client.post(HOOK_URL, data=json.dumps(order_sign_request), content_type="application/json")

    assert seen == [date(2026, 11, 24)]
