"""Client authentication on the real app: discovery, service and feedback need a valid client JWT by
default; failures are bare 401s; preflight and liveness stay open; the development switch is loud."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
from pathlib import Path

import pytest
import requests

from cds_service import create_app
from cds_service.auth import AuthConfigurationError
from cds_service.log_safety import configure_logging
from cds_service.settings import Settings
from sandbox.ehr_signer import EhrSigner
from tests.cds_service.served import free_port, served

BASE = "https://cds.payer.example"
DISCOVERY = "/cds-services"
HOOK = "/cds-services/car-t-coverage"
FEEDBACK = HOOK + "/feedback"
EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(scope="module")
def signer():
    return EhrSigner.generate(iss="https://ehr.hospital.example", alg="ES384")


@pytest.fixture
def secure_settings(tmp_path, signer):
    clients = signer.write_trusted_clients(tmp_path / "trusted-clients.yaml", fhir_servers=["https://ehr.hospital.example"])
    return Settings(trusted_clients_file=clients, public_base_url=BASE, database_url="sqlite://",
                    cors_origins=("https://ehr.hospital.example",))


@pytest.fixture
def app(secure_settings):
    return create_app(secure_settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def hook_request():
    body = json.loads((EXAMPLES / "crd221-order-sign-request.json").read_text(encoding="utf-8"))
    body["fhirServer"] = "https://ehr.hospital.example/fhir/R4"
    return copy.deepcopy(body)


def assert_bare_401(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.get_data() == b""


@pytest.mark.parametrize("method, path", [("GET", DISCOVERY), ("POST", HOOK), ("POST", FEEDBACK),
                                          ("POST", "/cds-services/no-such-service")])
def test_every_cds_endpoint_requires_a_jwt_by_default(client, method, path, hook_request):
    assert_bare_401(client.open(path, method=method, json=hook_request if method == "POST" else None))


def test_discovery_with_a_valid_jwt(client, signer):
    response = client.get(DISCOVERY, headers=signer.authorization_header(BASE + DISCOVERY))
    assert response.status_code == 200 and response.get_json()["services"]


def test_service_call_with_a_valid_jwt_is_answered_and_audited(app, client, signer, hook_request):
    response = client.post(HOOK, json=hook_request, headers=signer.authorization_header(BASE + HOOK))
    assert response.status_code == 200
    [row] = app.extensions["cart_cds.audit"].show(hook_request["hookInstance"])
    assert row["client"] == signer.iss and row["httpStatus"] == 200


def test_a_discovery_token_does_not_open_the_service(client, signer, hook_request):
    assert_bare_401(client.post(HOOK, json=hook_request, headers=signer.authorization_header(BASE + DISCOVERY)))


def test_aud_is_built_from_the_public_base_url_not_the_host_header(client, signer):
    assert_bare_401(client.get(DISCOVERY, headers=signer.authorization_header("http://localhost/cds-services")))


@pytest.mark.parametrize("aud", [BASE + FEEDBACK, BASE + HOOK])
def test_feedback_accepts_its_own_url_and_the_service_url(client, signer, aud):
    item = json.loads((EXAMPLES / "cdshooks2-feedback-accepted.json").read_text(encoding="utf-8"))
    response = client.post(FEEDBACK, json=item, headers=signer.authorization_header(aud))
    assert response.status_code == 200


def test_replayed_token_is_refused_on_the_second_call(client, signer):
    headers = signer.authorization_header(BASE + DISCOVERY)
    assert client.get(DISCOVERY, headers=headers).status_code == 200
    assert_bare_401(client.get(DISCOVERY, headers=headers))


@pytest.mark.parametrize("header", ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer  x y"])
def test_malformed_authorization_headers(client, header):
    assert_bare_401(client.get(DISCOVERY, headers={"Authorization": header}))


def test_preflight_and_liveness_need_no_jwt(client):
    preflight = client.options(HOOK, headers={"Origin": "https://ehr.hospital.example",
                                              "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert client.get("/healthz").status_code == 200


def test_refusal_is_logged_with_its_reason_and_without_the_token(secure_settings, signer):
    app = create_app(secure_settings)
    stream = io.StringIO()
    handler = configure_logging("INFO", stream=stream)
    try:
        token = signer.token(BASE + "/cds-services/other")
        assert_bare_401(app.test_client().get(DISCOVERY, headers={"Authorization": f"Bearer {token}"}))
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    refusal = next(line for line in lines if line["event"] == "client JWT refused")
    assert refusal["reason"] == "wrong-aud" and refusal["client"] == signer.iss
    assert token not in stream.getvalue() and token.split(".")[2] not in stream.getvalue()


def test_fhir_server_outside_the_clients_list_is_refused(client, signer, hook_request):
    hook_request["fhirServer"] = "https://attacker.example/fhir"
    response = client.post(HOOK, json=hook_request, headers=signer.authorization_header(BASE + HOOK))
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["fhirServer"]
    assert "attacker" not in response.get_data(as_text=True)


def test_too_many_draft_orders_is_413_naming_the_field(client, signer, hook_request):
    entry = hook_request["context"]["draftOrders"]["entry"][0]
    hook_request["context"]["draftOrders"]["entry"] = [copy.deepcopy(entry) for _ in range(51)]
    response = client.post(HOOK, json=hook_request, headers=signer.authorization_header(BASE + HOOK))
    assert response.status_code == 413
    assert response.get_json()["issue"][0]["expression"] == ["context.draftOrders.entry"]


def test_nesting_beyond_the_parser_is_400_not_500(client, signer):
    body = b'{"hook": "order-sign", "extension": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = client.post(HOOK, data=body, content_type="application/json",
                           headers=signer.authorization_header(BASE + HOOK))
    assert response.status_code == 400


def test_development_switch_turns_auth_off_and_warns_at_every_start(caplog, hook_request):
    settings = Settings(auth_disabled=True, database_url="sqlite://")
    for _ in range(2):
        app = create_app(settings)
    warnings = [r for r in caplog.records if "DISABLED" in r.getMessage()]
    assert len(warnings) == 2 and all(r.levelno == logging.WARNING for r in warnings)
    assert app.test_client().post(HOOK, json=hook_request).status_code == 200


def test_auth_on_without_a_trusted_clients_file_stops_the_start():
    with pytest.raises(AuthConfigurationError, match="CART_CDS_TRUSTED_CLIENTS_FILE"):
        create_app(Settings(database_url="sqlite://"))


def test_auth_on_without_a_public_base_url_stops_the_start(secure_settings):
    """The aud is never derived from request headers, so without the public URL there is nothing to
    check it against (issue 17: a spoofed Host made another service's token pass)."""
    with pytest.raises(AuthConfigurationError, match="CART_CDS_PUBLIC_BASE_URL"):
        create_app(dataclasses.replace(secure_settings, public_base_url=None))


@pytest.mark.parametrize("headers", [{"Host": "cds.other.example"},
                                     {"Host": "cds.other.example", "X-Forwarded-Proto": "https",
                                      "X-Forwarded-Host": "cds.other.example"}])
def test_spoofed_host_headers_do_not_change_the_expected_aud(client, signer, headers):
    token_for_other_service = signer.authorization_header("https://cds.other.example/cds-services")
    assert_bare_401(client.get(DISCOVERY, headers={**headers, **token_for_other_service}))


def test_jti_store_down_is_503_with_an_operation_outcome(secure_settings, signer):
    app = create_app(dataclasses.replace(secure_settings, redis_url="redis://127.0.0.1:1/0"))
    response = app.test_client().get(DISCOVERY, headers=signer.authorization_header(BASE + DISCOVERY))
    assert response.status_code == 503 and response.headers["Retry-After"]
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "transient"


@pytest.mark.slow
@pytest.mark.loopback_http
def test_a_token_is_accepted_once_by_several_workers_without_redis(tmp_path, signer):
    """Four gunicorn workers, no Redis: the jti store is the audit database they share."""
    clients = signer.write_trusted_clients(tmp_path / "clients.yaml")
    environment = {"CART_CDS_TRUSTED_CLIENTS_FILE": str(clients), "CART_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
                   "CART_CDS_AUTH_DISABLED": "false", "CART_CDS_REDIS_URL": ""}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with served({**environment, "CART_CDS_PUBLIC_BASE_URL": base}, port=port, workers=4):
        headers = {**signer.authorization_header(base + DISCOVERY), "Connection": "close"}  # a new connection each
        statuses = [requests.get(base + DISCOVERY, headers=headers, timeout=10).status_code for _ in range(12)]
    assert sorted(statuses) == [200] + [401] * 11
