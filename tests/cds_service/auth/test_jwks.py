"""JWKS fetching: timeout, no redirects, size cap, bad bodies; the cache keeps serving the last good set."""

from __future__ import annotations

import socket
import threading
import time

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


class SilentServer:
    """A loopback TCP server that accepts connections and never answers (a hung JWKS host)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/jwks.json"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self._socket.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


def _concurrent_lookups(cache: JwksCache, url: str, callers: int) -> list[float]:
    """Seconds each of ``callers`` simultaneous lookups took (each ends in JwksFetchError)."""
    barrier, durations = threading.Barrier(callers), []

    def lookup():
        barrier.wait()
        started = time.monotonic()
        with pytest.raises(JwksFetchError):
            cache.key(url, "k1")
        durations.append(time.monotonic() - started)

    threads = [threading.Thread(target=lookup) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return durations


@pytest.mark.loopback_http
def test_a_hung_jwks_host_costs_each_caller_at_most_the_timeout_and_one_connection(silent_server):
    """Issue 17: behind one global lock, four callers were answered after 3, 6, 9 and 12 s. Now they
    share one fetch and none waits longer than the timeout (0.5 s here; queued they would take 4 s)."""
    cache = JwksCache(timeout_seconds=0.5)
    durations = _concurrent_lookups(cache, silent_server.url, 8)
    assert len(durations) == 8 and max(durations) < 2.0
    assert len(silent_server.connections) == 1


@pytest.mark.loopback_http
def test_a_failed_fetch_is_remembered_briefly(silent_server, http_mock):
    clock = [0.0]
    cache = JwksCache(timeout_seconds=0.3, failure_ttl_seconds=30, clock=lambda: clock[0])
    _concurrent_lookups(cache, silent_server.url, 1)
    _concurrent_lookups(cache, silent_server.url, 4)  # answered at once from the remembered failure
    assert len(silent_server.connections) == 1
    clock[0] = 31  # after the failure TTL the host is tried again
    _concurrent_lookups(cache, silent_server.url, 1)
    assert len(silent_server.connections) == 2


def test_a_fetch_for_one_url_does_not_hold_up_another(silent_server, http_mock):
    http_mock.add_passthru(silent_server.url)
    http_mock.add(responses.GET, JKU, json=SIGNER.public_jwks())
    cache = JwksCache(timeout_seconds=5)
    hung = threading.Thread(target=lambda: pytest.raises(JwksFetchError, cache.key, silent_server.url, "k1"))
    hung.start()
    while not silent_server.connections:
        time.sleep(0.01)
    started = time.monotonic()
    assert cache.key(JKU, "k1") is not None
    assert time.monotonic() - started < 2.5  # did not wait for the hung URL's 5 s
    hung.join()
