"""JWKS fetching: timeout, no redirects, size cap, bad bodies; the cache keeps serving the last good set."""

from __future__ import annotations

import pytest
import requests
import responses

from cds_service.auth.jwks import MAX_JWKS_BYTES, JwksCache, JwksFetchError, keys_by_kid
from sandbox.ehr_signer import EhrSigner

JKU = "https://ehr.example.org/jwks.json"
SIGNER = EhrSigner.generate(kid="k1")


def test_fetch_uses_a_timeout_and_no_redirects(http_mock):
    http_mock.add(responses.GET, JKU, json=SIGNER.public_jwks())
    seen = {}

    class Recording(requests.Session):
        def get(self, url, **kwargs):
            seen.update(kwargs)
            return super().get(url, **kwargs)

    assert JwksCache(timeout_seconds=2.5, session=Recording()).key(JKU, "k1") is not None
    assert seen["timeout"] == 2.5 and seen["allow_redirects"] is False


@pytest.mark.parametrize("answer", [
    {"status": 302, "headers": {"Location": "http://169.254.169.254/"}},
    {"status": 500},
    {"body": b"<html>not json</html>"},
    {"body": b"{" + b" " * (MAX_JWKS_BYTES + 10) + b"}"},
    {"body": requests.Timeout()},
])
def test_unusable_answers_raise(http_mock, answer):
    http_mock.add(responses.GET, JKU, **answer)
    with pytest.raises(JwksFetchError):
        JwksCache().key(JKU, "k1")
    assert len(http_mock.calls) == 1  # the redirect was not followed


def test_last_good_set_is_kept_when_a_refresh_fails(http_mock):
    clock = [0.0]
    cache = JwksCache(ttl_seconds=10, clock=lambda: clock[0])
    http_mock.add(responses.GET, JKU, json=SIGNER.public_jwks())
    http_mock.add(responses.GET, JKU, status=503)
    assert cache.key(JKU, "k1") is not None
    clock[0] = 11  # stale: refresh fails, the old keys still verify
    assert cache.key(JKU, "k1") is not None


def test_private_symmetric_and_kidless_keys_are_ignored():
    jwk = SIGNER.public_jwk()
    keys = keys_by_kid({"keys": [
        jwk,
        {**jwk, "kid": "private", "d": "SeFXUXda8UomZ8GFUl7HH_Oi15rIbfMcsWj9ecIsDR8kLbqsEz2CGNgwy_IcILxy"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {k: v for k, v in jwk.items() if k != "kid"},
        {**jwk, "kid": "enc", "use": "enc"},
        "not-a-key",
    ]})
    assert set(keys) == {"k1"}
