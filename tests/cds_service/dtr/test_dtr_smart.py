"""SMART Backend Services in front of the DTR operations: a trusted client trades a signed assertion
for a short-lived token; without a live token every operation is refused."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

import jwt
import orjson
import pytest

from cds_service import create_app
from cds_service.dtr.smart import ACCESS_TOKENS_KEY, ASSERTION_TYPE, TOKEN_SECONDS, AccessTokens
from cds_service.settings import Settings
from sandbox.ehr_signer import EhrSigner

BASE = "https://payer.example"
TOKEN_URL = BASE + "/fhir/auth/token"
PACKAGE = "/fhir/Questionnaire/$questionnaire-package"
BODY = orjson.dumps({"resourceType": "Parameters", "parameter": [
    {"name": "coverage", "resource": {"resourceType": "Coverage", "id": "cov-1", "status": "active",
                                      "beneficiary": {"reference": "Patient/p1"}, "payor": [{"display": "Plan"}]}},
    {"name": "questionnaire", "valueCanonical": BASE + "/fhir/Questionnaire/cp-phar-481"}]})


@pytest.fixture(scope="module")
def signer():
    return EhrSigner.generate(iss="https://dtr-app.example", alg="ES384")


@pytest.fixture
def app(tmp_path, signer):
    clients = signer.write_trusted_clients(tmp_path / "trusted-clients.yaml")
    return create_app(Settings(trusted_clients_file=clients, public_base_url=BASE, database_url="sqlite://"))


def assertion(signer, **changes) -> str:
    now = int(time.time())
    claims = {"iss": signer.iss, "sub": signer.iss, "aud": TOKEN_URL, "iat": now, "exp": now + 240,
              "jti": secrets.token_hex(16)} | changes
    return jwt.encode(claims, signer.private_key, algorithm=signer.alg, headers={"kid": signer.kid, "typ": "JWT"})


def token_request(app, client_assertion: str, **fields):
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion, "scope": "system/Questionnaire.rs system/Patient.rs"} | fields
    return app.test_client().post("/fhir/auth/token", data=form)


def package(app, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return app.test_client().post(PACKAGE, data=BODY, content_type="application/fhir+json", headers=headers)


def test_the_configuration_names_the_token_endpoint(app):
    config = app.test_client().get("/fhir/.well-known/smart-configuration").get_json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert "client_credentials" in config["grant_types_supported"] and "ES384" in config[
        "token_endpoint_auth_signing_alg_values_supported"]


def test_a_trusted_client_gets_a_short_lived_token_that_opens_the_operations(app, signer):
    assert package(app, None).status_code == 401
    answer = token_request(app, assertion(signer))
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    issued = answer.get_json()
    assert issued["token_type"] == "bearer" and issued["expires_in"] == TOKEN_SECONDS
    assert issued["scope"] == "system/Questionnaire.rs", "only the scopes served here are granted"
    assert package(app, issued["access_token"]).status_code == 200
    assert package(app, issued["access_token"][:-2] + "xx").status_code == 401


@pytest.mark.parametrize("change, fields, status, error", [
    ({"aud": BASE + "/cds-services/car-t-coverage"}, {}, 401, "invalid_client"),
    ({"sub": "someone-else"}, {}, 401, "invalid_client"),
    ({"exp": int(time.time()) + 3600}, {}, 401, "invalid_client"),
    ({"iss": "https://untrusted.example", "sub": "https://untrusted.example"}, {}, 401, "invalid_client"),
    ({}, {"grant_type": "password"}, 400, "unsupported_grant_type"),
    ({}, {"client_assertion_type": "urn:other"}, 400, "invalid_request"),
    ({}, {"scope": "system/Patient.rs"}, 400, "invalid_scope"),
], ids=["wrong-aud", "sub-not-iss", "exp-too-far", "untrusted", "grant", "assertion-type", "scope"])
def test_refusals_are_oauth_errors_that_do_not_say_which_check_failed(app, signer, change, fields, status, error):
    answer = token_request(app, assertion(signer, **change), **fields)
    assert (answer.status_code, answer.get_json()) == (status, {"error": error})


def test_an_assertion_is_accepted_once(app, signer):
    once = assertion(signer)
    assert token_request(app, once).status_code == 200
    assert token_request(app, once).get_json() == {"error": "invalid_client"}


def test_a_token_expires(app):
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    engine = app.extensions[ACCESS_TOKENS_KEY].engine
    token = AccessTokens(engine, clock=lambda: now).issue("https://dtr-app.example", "system/Questionnaire.rs")
    assert AccessTokens(engine, clock=lambda: now + timedelta(seconds=TOKEN_SECONDS - 1)).valid(token)
    assert not AccessTokens(engine, clock=lambda: now + timedelta(seconds=TOKEN_SECONDS)).valid(token)
