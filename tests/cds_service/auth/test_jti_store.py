"""jti store: once per (issuer, jti) until expiry, in memory and in Redis shared by workers."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

from cds_service.auth.jti_store import (
    JtiStoreUnavailable,
    MemoryJtiStore,
    RedisJtiStore,
    jti_store_from_url,
    storage_key,
)
from tests.cds_service.store_backends import JTI_STORE_BACKENDS, REDIS_URL, redis_only


def make_store(kind: str):
    if kind == "memory":
        return MemoryJtiStore()
    return RedisJtiStore.from_url(REDIS_URL)


@pytest.mark.parametrize("kind", JTI_STORE_BACKENDS)
def test_first_use_then_replay(kind):
    store = make_store(kind)
    jti = str(uuid.uuid4())
    exp = time.time() + 60
    assert store.first_use("https://ehr.example", jti, exp) is True
    assert store.first_use("https://ehr.example", jti, exp) is False
    # the same jti from another issuer is a different token
    assert store.first_use("https://other.example", jti, exp) is True


@pytest.mark.parametrize("kind", JTI_STORE_BACKENDS)
def test_concurrent_workers_accept_a_jti_exactly_once(kind):
    stores = [make_store(kind) for _ in range(8)] if kind == "redis" else [make_store(kind)] * 8
    jti = str(uuid.uuid4())
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def worker(store):
        barrier.wait()
        results.append(store.first_use("https://ehr.example", jti, time.time() + 60))

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


@pytest.mark.redis
@redis_only
def test_redis_entry_expires_after_the_token():
    client = redis.Redis.from_url(REDIS_URL)
    store = RedisJtiStore(client)
    jti = str(uuid.uuid4())
    assert store.first_use("iss", jti, time.time() + 1)
    ttl = client.pttl(RedisJtiStore.PREFIX + storage_key("iss", jti))
    assert 0 < ttl <= 2100  # remembered until exp (+1 s margin), not forever


def test_memory_store_forgets_expired_entries():
    clock = [1000.0]
    store = MemoryJtiStore(clock=lambda: clock[0])
    assert store.first_use("iss", "a", 1010)
    assert not store.first_use("iss", "a", 1010)
    clock[0] = 1011
    assert store.first_use("iss", "a", 1100)  # the first token is expired: its jti may not come back
    for i in range(3000):  # sweeping keeps the store bounded by the live tokens
        store.first_use("iss", f"j{i}", 1012)
    clock[0] = 2000
    store.first_use("iss", "late", 3000)
    for i in range(2000):
        store.first_use("iss", f"k{i}", 3000)
    assert len(store) <= 2002


def test_unreachable_redis_fails_closed():
    store = RedisJtiStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(JtiStoreUnavailable):
        store.first_use("iss", "x", time.time() + 60)


def test_factory_picks_memory_without_url():
    assert isinstance(jti_store_from_url(None), MemoryJtiStore)
    assert isinstance(jti_store_from_url("redis://127.0.0.1:6379/0"), RedisJtiStore)
