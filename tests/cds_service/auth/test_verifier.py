"""The client-JWT test matrix (CDS Hooks 2.0 §Trusting CDS Clients)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization

from cds_service.auth.jwks import JwksCache
from cds_service.auth.trusted_clients import TrustedClients
from cds_service.auth.verifier import AuthError, ClientJwtVerifier
from sandbox.ehr_signer import EhrSigner
from tests.cds_service.store_backends import fresh_jti_store

AUD = "https://cds.payer.example/cds-services/car-t-coverage"
JKU = "https://ehr.example.org/.well-known/jwks.json"
EHR_ISS = "https://ehr.example.org"
EPIC_ISS = "https://fhir.hospital.example/api/FHIR/R4"


@pytest.fixture(scope="module")
def es384():
    return EhrSigner.generate(iss=EHR_ISS, alg="ES384", kid="ehr-es384-1")


@pytest.fixture(scope="module")
def rs384():
    return EhrSigner.generate(iss=EPIC_ISS, alg="RS384", kid="epic-rs384")


@pytest.fixture
def clients(es384, rs384):
    return TrustedClients.from_mapping({"clients": [
        {"iss": EHR_ISS, "jku": [JKU]},
        {"iss": EPIC_ISS, "jwks": rs384.public_jwks(), "audiences": ["cart-cds-epic"]},
    ]})


@pytest.fixture
def verifier(clients):
    return ClientJwtVerifier(clients, JwksCache(min_refetch_seconds=0), fresh_jti_store(), leeway_seconds=30)


@pytest.fixture
def jwks_served(http_mock, es384):
    http_mock.add(responses.GET, JKU, json=es384.public_jwks())
    return http_mock


def refused(verifier, token, aud=AUD) -> str:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token, aud)
    return caught.value.reason


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_valid_es384_token_with_allowed_jku_is_accepted(verifier, es384, jwks_served):
    caller = verifier.verify(es384.token(AUD, jku=JKU), AUD)
    assert caller.iss == EHR_ISS
    assert len(jwks_served.calls) == 1 and jwks_served.calls[0].request.url == JKU


def test_valid_rs384_token_with_inline_jwks_is_accepted_without_any_fetch(verifier, rs384, http_mock):
    assert verifier.verify(rs384.token(AUD), AUD).iss == EPIC_ISS
    assert len(http_mock.calls) == 0


def test_jwks_is_cached_between_calls(verifier, es384, jwks_served):
    for _ in range(3):
        verifier.verify(es384.token(AUD, jku=JKU), AUD)
    assert len(jwks_served.calls) == 1


def test_alg_none_is_refused(verifier, es384):
    claims = {"iss": EHR_ISS, "aud": AUD, "iat": int(time.time()), "exp": int(time.time()) + 300, "jti": "n1"}
    token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': es384.kid})}.{b64(claims)}."
    assert refused(verifier, token) == "alg-not-allowed"


def test_hs256_signed_with_the_public_key_is_refused(verifier, rs384, http_mock):
    # The classic key-confusion attack: HMAC keyed with the PEM of the client's public key.
    pem = rs384.private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = {"iss": EPIC_ISS, "aud": AUD, "iat": int(time.time()), "exp": int(time.time()) + 300, "jti": "h1"}
    header = b64({"alg": "HS256", "typ": "JWT", "kid": rs384.kid})
    signing_input = f"{header}.{b64(claims)}"
    signature = b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    assert refused(verifier, f"{signing_input}.{signature}") == "alg-not-allowed"
    assert len(http_mock.calls) == 0


def test_wrong_aud_is_refused(verifier, rs384):
    token = rs384.token("https://cds.payer.example/cds-services/other-service")
    assert refused(verifier, token) == "wrong-aud"


def test_discovery_token_does_not_open_the_service(verifier, rs384):
    assert refused(verifier, rs384.token("https://cds.payer.example/cds-services")) == "wrong-aud"


def test_configured_extra_aud_value_is_accepted_for_that_client_only(verifier, rs384, es384, jwks_served):
    assert verifier.verify(rs384.token("cart-cds-epic"), AUD).iss == EPIC_ISS
    assert refused(verifier, es384.token("cart-cds-epic", jku=JKU)) == "wrong-aud"


def test_aud_as_a_list_containing_the_url_is_accepted(verifier, rs384):
    claims = {"iss": EPIC_ISS, "aud": ["https://elsewhere.example", AUD], "iat": int(time.time()),
              "exp": int(time.time()) + 300, "jti": "list-aud"}
    token = jwt.encode(claims, rs384.private_key, algorithm="RS384", headers={"kid": rs384.kid, "typ": "JWT"})
    assert verifier.verify(token, AUD).iss == EPIC_ISS


def test_expired_token_is_refused_beyond_the_leeway(verifier, rs384):
    now = time.time()
    assert refused(verifier, rs384.token(AUD, now=now - 400, lifetime_seconds=300)) == "expired"


def test_token_expired_within_the_leeway_is_accepted(verifier, rs384):
    assert verifier.verify(rs384.token(AUD, now=time.time() - 310, lifetime_seconds=300), AUD)


def test_nbf_in_the_future_is_refused(verifier, rs384):
    now = int(time.time())
    claims = {"iss": EPIC_ISS, "aud": AUD, "iat": now, "nbf": now + 600, "exp": now + 900, "jti": "nbf1"}
    token = jwt.encode(claims, rs384.private_key, algorithm="RS384", headers={"kid": rs384.kid, "typ": "JWT"})
    assert refused(verifier, token) == "not-yet-valid"


def test_epic_style_nbf_five_minutes_before_iat_is_accepted(verifier, rs384):
    now = int(time.time())
    claims = {"iss": EPIC_ISS, "aud": AUD, "iat": now, "nbf": now - 300, "exp": now + 300, "jti": "nbf2",
              "sub": "client-id"}
    token = jwt.encode(claims, rs384.private_key, algorithm="RS384", headers={"kid": rs384.kid, "typ": "JWT"})
    assert verifier.verify(token, AUD)


def test_iat_in_the_future_is_refused(verifier, rs384):
    assert refused(verifier, rs384.token(AUD, now=time.time() + 600)) in {"not-yet-valid", "bad-iat"}


def signed(signer, claims: dict, **header) -> str:
    return jwt.encode(claims, signer.private_key, algorithm=signer.alg, headers={"kid": signer.kid, "typ": "JWT", **header})


def hand_signed(signer, header: dict, claims_json: bytes) -> str:
    """A token whose claims are raw JSON text (NaN, numbers PyJWT would not write)."""
    signing_input = f"{b64(header)}.{b64(claims_json)}"
    signature = jwt.get_algorithm_by_name(signer.alg).sign(signing_input.encode(), signer.private_key)
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["{now}", "not a time", True, None, [1], {"t": 1}])
def test_time_claims_that_are_not_json_numbers_are_refused(verifier, rs384, claim, value):
    """A numeric string is read by PyJWT with int(); the claim must be a JSON number (issue 17)."""
    now = int(time.time())
    claims = {"iss": EPIC_ISS, "aud": AUD, "iat": now, "nbf": now, "exp": now + 300, "jti": f"{claim}-{value!r}"}
    claims[claim] = value.format(now=now + 300 if claim == "exp" else now) if isinstance(value, str) else value
    assert refused(verifier, signed(rs384, claims)) == "bad-time-claim"


@pytest.mark.parametrize("exp", [b"NaN", b"Infinity", b"1e400"])
def test_time_claims_that_are_not_finite_are_refused(verifier, rs384, exp):
    now = int(time.time())
    claims = b'{"iss": "%s", "aud": "%s", "iat": %d, "exp": %s, "jti": "nan-%s"}' % (
        EPIC_ISS.encode(), AUD.encode(), now, exp, exp)
    assert refused(verifier, hand_signed(rs384, {"alg": "RS384", "typ": "JWT", "kid": rs384.kid}, claims)) \
        == "bad-time-claim"


def test_fractional_times_are_numbers_too(verifier, rs384):
    now = time.time()
    claims = {"iss": EPIC_ISS, "aud": AUD, "iat": now, "exp": now + 299.5, "jti": "fractional"}
    assert verifier.verify(signed(rs384, claims), AUD).iss == EPIC_ISS


def test_token_living_longer_than_the_maximum_is_refused(verifier, rs384):
    ten_years = 10 * 365 * 24 * 3600
    assert refused(verifier, rs384.token(AUD, lifetime_seconds=ten_years)) == "lifetime-too-long"
    # the maximum (300 s) plus the leeway (30 s) is still accepted; one second more is not
    assert verifier.verify(rs384.token(AUD, lifetime_seconds=330), AUD)
    assert refused(verifier, rs384.token(AUD, lifetime_seconds=331)) == "lifetime-too-long"


def test_a_refused_long_lived_token_leaves_no_jti_behind(verifier, rs384):
    assert refused(verifier, rs384.token(AUD, lifetime_seconds=86400, jti="long")) == "lifetime-too-long"
    assert verifier.verify(rs384.token(AUD, jti="long"), AUD)


def test_replayed_jti_is_refused(verifier, rs384):
    token = rs384.token(AUD)
    verifier.verify(token, AUD)
    assert refused(verifier, token) == "replayed-jti"
    # the same jti in a freshly signed token is a replay too
    assert refused(verifier, rs384.token(AUD, jti=jwt.decode(token, options={"verify_signature": False})["jti"])) \
        == "replayed-jti"


def test_refused_token_does_not_consume_its_jti(verifier, rs384):
    assert refused(verifier, rs384.token("https://wrong.example/", jti="keep-me")) == "wrong-aud"
    assert verifier.verify(rs384.token(AUD, jti="keep-me"), AUD)


def test_unknown_kid_triggers_one_refetch_and_then_accepts_the_rotated_key(clients, es384, http_mock):
    verifier = ClientJwtVerifier(clients, JwksCache(min_refetch_seconds=0), fresh_jti_store())
    rotated = EhrSigner.generate(iss=EHR_ISS, alg="ES384", kid="ehr-es384-2")
    http_mock.add(responses.GET, JKU, json=es384.public_jwks())
    http_mock.add(responses.GET, JKU, json={"keys": [es384.public_jwk(), rotated.public_jwk()]})
    verifier.verify(es384.token(AUD, jku=JKU), AUD)
    assert verifier.verify(rotated.token(AUD, jku=JKU), AUD).iss == EHR_ISS
    assert len(http_mock.calls) == 2


def test_unknown_kid_refetch_is_rate_limited(clients, es384, http_mock):
    clock = [1000.0]
    verifier = ClientJwtVerifier(clients, JwksCache(min_refetch_seconds=60, clock=lambda: clock[0]),
                                 fresh_jti_store())
    http_mock.add(responses.GET, JKU, json=es384.public_jwks())
    verifier.verify(es384.token(AUD, jku=JKU), AUD)
    forged = EhrSigner.generate(iss=EHR_ISS, alg="ES384", kid="made-up")
    for _ in range(5):
        assert refused(verifier, forged.token(AUD, jku=JKU)) == "unknown-kid"
    assert len(http_mock.calls) == 1
    clock[0] += 61
    assert refused(verifier, forged.token(AUD, jku=JKU)) == "unknown-kid"
    assert len(http_mock.calls) == 2


def test_jku_off_the_allow_list_causes_no_http_request(verifier, es384, http_mock):
    evil = "https://attacker.example/jwks.json"
    http_mock.add(responses.GET, evil, json=es384.public_jwks())
    assert refused(verifier, es384.token(AUD, jku=evil)) == "jku-not-allowed"
    assert refused(verifier, es384.token(AUD, jku="http://169.254.169.254/latest/meta-data")) == "jku-not-allowed"
    assert len(http_mock.calls) == 0


def test_pinned_key_wins_over_any_jku_and_nothing_is_fetched(rs384, http_mock):
    """The public CDS Hooks sandbox always sends a jku; a deployment that pins its key inline must still
    verify it, without fetching -- whether the jku is allow-listed or not."""
    listed = "https://fhir.hospital.example/jwks.json"
    clients = TrustedClients.from_mapping({"clients": [{"iss": EPIC_ISS, "jwks": rs384.public_jwks(), "jku": [listed]}]})
    verifier = ClientJwtVerifier(clients, JwksCache(), fresh_jti_store())
    for jku in (listed, "https://attacker.example/jwks.json"):
        assert verifier.verify(signed(rs384, _claims(EPIC_ISS), jku=jku), AUD).iss == EPIC_ISS
    assert len(http_mock.calls) == 0


def test_without_a_matching_pinned_key_an_unlisted_jku_is_never_fetched(rs384, http_mock):
    clients = TrustedClients.from_mapping({"clients": [{"iss": EPIC_ISS, "jwks": rs384.public_jwks()}]})
    verifier = ClientJwtVerifier(clients, JwksCache(), fresh_jti_store())
    other = EhrSigner.generate(iss=EPIC_ISS, alg="RS384", kid="not-pinned")
    assert refused(verifier, signed(other, _claims(EPIC_ISS), jku="https://attacker.example/jwks.json")) \
        == "jku-not-allowed"
    assert len(http_mock.calls) == 0


def _claims(iss: str) -> dict:
    now = int(time.time())
    return {"iss": iss, "aud": AUD, "iat": now, "exp": now + 300, "jti": f"c-{time.monotonic_ns()}"}


def test_untrusted_iss_is_refused_without_any_fetch(verifier, http_mock):
    stranger = EhrSigner.generate(iss="https://stranger.example", alg="ES384")
    assert refused(verifier, stranger.token(AUD, jku="https://stranger.example/jwks")) == "untrusted-iss"
    assert len(http_mock.calls) == 0


def test_token_signed_by_another_key_with_the_trusted_kid_is_refused(verifier, rs384):
    impostor = EhrSigner.generate(iss=EPIC_ISS, alg="RS384", kid=rs384.kid)
    assert refused(verifier, impostor.token(AUD)) == "bad-signature"


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti"])
def test_missing_required_claim_is_refused(verifier, rs384, claim):
    now = int(time.time())
    claims = {"iss": EPIC_ISS, "aud": AUD, "iat": now, "exp": now + 300, "jti": f"missing-{claim}"}
    del claims[claim]
    token = jwt.encode(claims, rs384.private_key, algorithm="RS384", headers={"kid": rs384.kid, "typ": "JWT"})
    assert refused(verifier, token) in {"missing-claim", "untrusted-iss"}


@pytest.mark.parametrize("header, reason", [
    ({"typ": "JWT"}, "missing-kid"),
    ({"kid": "epic-rs384", "typ": "at+jwt"}, "bad-typ"),
    ({"kid": "epic-rs384"}, "bad-typ"),
])
def test_header_requirements(verifier, rs384, header, reason):
    now = int(time.time())
    claims = {"iss": EPIC_ISS, "aud": AUD, "iat": now, "exp": now + 300, "jti": "hdr"}
    token = jwt.encode(claims, rs384.private_key, algorithm="RS384", headers=header)
    if "typ" not in header:  # PyJWT adds typ=JWT by default; strip it to test the requirement
        head, rest = token.split(".", 1)
        decoded = json.loads(base64.urlsafe_b64decode(head + "=="))
        decoded.pop("typ", None)
        token = f"{b64(decoded)}.{rest}"
    assert refused(verifier, token) == reason


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "e30.e30.", "\x00\x01"])
def test_garbage_tokens_are_refused(verifier, token):
    assert refused(verifier, token) in {"malformed", "alg-not-allowed"}


def test_tenant_must_match_when_configured(es384, http_mock):
    clients = TrustedClients.from_mapping({"clients": [{"iss": EHR_ISS, "jwks": es384.public_jwks(), "tenant": "t-1"}]})
    verifier = ClientJwtVerifier(clients, JwksCache(), fresh_jti_store())
    assert refused(verifier, es384.token(AUD, tenant="t-2")) == "wrong-tenant"
    assert refused(verifier, es384.token(AUD)) == "wrong-tenant"
    assert verifier.verify(es384.token(AUD, tenant="t-1"), AUD).tenant == "t-1"


# --- the public CDS Hooks 2.0 example token ---

@pytest.fixture(scope="module")
def spec_example():
    return json.loads((Path(__file__).parent / "data" / "cdshooks2-jwt-example.json").read_text(encoding="utf-8"))


def _spec_verifier(example, *, verify_exp: bool):
    clients = TrustedClients.from_mapping({"clients": [
        {"iss": example["payload"]["iss"], "jku": [example["header"]["jku"]]}]})
    # the example was minted in 2011 for years: no lifetime limit, to check its signature at all
    return ClientJwtVerifier(clients, JwksCache(), fresh_jti_store(), verify_exp=verify_exp, max_lifetime_seconds=None)


def test_public_cds_hooks_example_verifies_when_expiry_is_ignored(spec_example, http_mock):
    http_mock.add(responses.GET, spec_example["header"]["jku"], json=spec_example["jwks_public"])
    caller = _spec_verifier(spec_example, verify_exp=False).verify(
        spec_example["compact_jwt"], spec_example["aud_for_this_token"])
    assert caller.iss == "https://fhir-ehr.example.com/"
    assert caller.tenant == spec_example["payload"]["tenant"]


def test_public_cds_hooks_example_fails_as_expired(spec_example, http_mock):
    http_mock.add(responses.GET, spec_example["header"]["jku"], json=spec_example["jwks_public"])
    assert refused(_spec_verifier(spec_example, verify_exp=True), spec_example["compact_jwt"],
                   spec_example["aud_for_this_token"]) == "expired"
