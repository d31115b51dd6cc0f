"""The trusted-clients file: valid entries load; every mistake stops the start naming entry and field."""

from __future__ import annotations

import pytest

from cds_service.auth.trusted_clients import TrustedClients, TrustedClientsError, origin_of
from sandbox.ehr_signer import EhrSigner

SIGNER = EhrSigner.generate(iss="https://ehr.example.org", kid="k1")


def test_yaml_file_with_jku_and_inline_jwks_loads(tmp_path):
    path = tmp_path / "clients.yaml"
    path.write_text(f"""
clients:
  - iss: https://sandbox.cds-hooks.org
    jku: https://sandbox.cds-hooks.org/.well-known/jwks.json
  - iss: https://ehr.example.org
    jwks: {{"keys": [{{"kty": "EC", "crv": "P-384", "kid": "k1", "x": "{SIGNER.public_jwk()['x']}", "y": "{SIGNER.public_jwk()['y']}"}}]}}
    tenant: 2ddd6c3a
    fhir_servers: [https://EHR.example.org/fhir/R4]
    audiences: [sand_man]
""")
    clients = TrustedClients.load(path)
    sandbox = clients.get("https://sandbox.cds-hooks.org")
    assert sandbox.jku == ("https://sandbox.cds-hooks.org/.well-known/jwks.json",)
    ehr = clients.get("https://ehr.example.org")
    assert ehr.tenant == "2ddd6c3a" and ehr.audiences == ("sand_man",)
    assert ehr.allows_fhir_server("https://ehr.example.org/fhir/R4/other")
    assert not ehr.allows_fhir_server("https://ehr.example.org.evil.example/fhir")
    assert sandbox.allows_fhir_server("https://anything.example")  # no list: not restricted here
    assert clients.get("https://unknown.example") is None and clients.get(None) is None


def test_signer_entry_round_trips(tmp_path):
    path = SIGNER.write_trusted_clients(tmp_path / "t.yaml", audiences=["x"])
    assert TrustedClients.load(path).get(SIGNER.iss).audiences == ("x",)


@pytest.mark.parametrize("data, message", [
    ({}, "clients"),
    ({"clients": [{"jku": "https://a.example/j"}]}, "clients[0].iss"),
    ({"clients": [{"iss": "a"}]}, "clients[0]: needs jku URLs or an inline jwks"),
    ({"clients": [{"iss": "a", "jku": "http://a.example/j"}]}, "clients[0].jku[0]"),
    ({"clients": [{"iss": "a", "jku": "file:///etc/passwd"}]}, "clients[0].jku[0]"),
    ({"clients": [{"iss": "a", "jwks": {"keys": [{"kty": "EC"}]}}]}, "clients[0].jwks"),
    ({"clients": [{"iss": "a", "jwks": {"keys": [{"kid": "k", "d": "secret"}]}}]}, "private key"),
    ({"clients": [{"iss": "a", "jku": "https://a.example/j", "issuer": "typo"}]}, "unknown field"),
    ({"clients": [{"iss": "a", "jku": "https://a.example/j", "fhir_servers": ["ehr.example"]}]}, "fhir_servers[0]"),
    ({"clients": [{"iss": "a", "jku": "https://a.example/j"}, {"iss": "a", "jku": "https://b.example/j"}]}, "twice"),
])
def test_invalid_entries_are_named(data, message):
    with pytest.raises(TrustedClientsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrustedClients.from_mapping(data)


def test_loopback_http_jku_is_allowed_for_local_tooling():
    clients = TrustedClients.from_mapping({"clients": [{"iss": "a", "jku": "http://127.0.0.1:8099/jwks"}]})
    assert clients.get("a").jku == ("http://127.0.0.1:8099/jwks",)


def test_unreadable_file_is_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("clients: [unclosed")
    with pytest.raises(TrustedClientsError, match="bad.yaml"):
        TrustedClients.load(bad)


@pytest.mark.parametrize("url, origin", [
    ("https://EHR.example.org:443/fhir", "https://ehr.example.org:443"),
    ("https://ehr.example.org/fhir", "https://ehr.example.org"),
    ("ftp://x", None), ("not a url", None), ("https://[::1]:8443/x", "https://[::1]:8443"),
])
def test_origin_of(url, origin):
    assert origin_of(url) == origin
