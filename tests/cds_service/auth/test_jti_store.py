"""jti replay store: once per (issuer, jti) until expiry, shared by every worker -- in the audit
database by default (SQLite file or PostgreSQL), in Redis when configured."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid

import pytest
import redis
from sqlalchemy import func, select

from cds_service.audit.store import make_engine, migrate
from cds_service.auth.jti_store import (
    JTI_TABLE,
    DatabaseJtiStore,
    JtiStoreUnavailable,
    RedisJtiStore,
    jti_store_for,
    storage_key,
)
from tests.cds_service.store_backends import JTI_STORE_BACKENDS, POSTGRES_URL, REDIS_URL, redis_only


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


def database_url(kind: str, sqlite_url: str) -> str:
    return sqlite_url if kind == "sqlite" else POSTGRES_URL


def make_store(kind: str, sqlite_url: str, engines: list | None = None):
    """A store as one worker process builds it (its own engine or client); its engine is added to
    ``engines`` for the caller to dispose."""
    if kind == "redis":
        return RedisJtiStore.from_url(REDIS_URL)
    engine = make_engine(database_url(kind, sqlite_url))
    migrate(engine)
    if engines is not None:
        engines.append(engine)
    return DatabaseJtiStore(engine)


@pytest.fixture
def engines():
    made: list = []
    yield made
    for engine in made:
        engine.dispose()


@pytest.mark.parametrize("kind", JTI_STORE_BACKENDS)
def test_first_use_then_replay(kind, sqlite_url, engines):
    store = make_store(kind, sqlite_url, engines)
    jti = str(uuid.uuid4())
    exp = time.time() + 60
    assert store.first_use("https://ehr.example", jti, exp) is True
    assert store.first_use("https://ehr.example", jti, exp) is False
    # the same jti from another issuer is a different token
    assert store.first_use("https://other.example", jti, exp) is True


def _worker_process(kind, sqlite_url, jti, barrier, results):
    engines: list = []
    store = make_store(kind, sqlite_url, engines)
    barrier.wait()
    results.put(store.first_use("https://ehr.example", jti, time.time() + 60))
    for engine in engines:
        engine.dispose()


@pytest.mark.parametrize("kind", JTI_STORE_BACKENDS)
def test_a_jti_is_accepted_once_across_worker_processes(kind, sqlite_url):
    """Four processes, as four gunicorn workers, each with its own store: one acceptance in all."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    jti = str(uuid.uuid4())
    workers = [context.Process(target=_worker_process, args=(kind, sqlite_url, jti, barrier, results))
               for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * 4
    assert sorted(results.get(timeout=5) for _ in workers) == [False, False, False, True]


@pytest.mark.parametrize("kind", JTI_STORE_BACKENDS)
def test_concurrent_threads_accept_a_jti_exactly_once(kind, sqlite_url, engines):
    stores = [make_store(kind, sqlite_url, engines) for _ in range(8)]
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


def test_database_entry_is_reclaimed_only_after_the_token_expired(sqlite_url):
    clock = [1000.0]
    engine = make_engine(sqlite_url)
    store = DatabaseJtiStore(engine, clock=lambda: clock[0])
    assert store.first_use("iss", "a", 1010)
    clock[0] = 1009
    assert not store.first_use("iss", "a", 1100)
    clock[0] = 1011  # the first token is expired: a new token may carry the same jti
    assert store.first_use("iss", "a", 1100)
    assert not store.first_use("iss", "a", 1100)


def test_database_store_sweeps_expired_rows(sqlite_url):
    clock = [1000.0]
    engine = make_engine(sqlite_url)
    store = DatabaseJtiStore(engine, clock=lambda: clock[0])
    for i in range(DatabaseJtiStore.SWEEP_EVERY - 1):
        store.first_use("iss", f"old-{i}", 1010)
    clock[0] = 2000
    store.first_use("iss", "live", 3000)  # the SWEEP_EVERY-th use deletes the expired rows
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(JTI_TABLE)) == 1


def test_database_keeps_only_a_hash_of_the_token_id(sqlite_url):
    engine = make_engine(sqlite_url)
    DatabaseJtiStore(engine).first_use("https://ehr.example", "secret-jti", time.time() + 60)
    with engine.connect() as connection:
        [key] = connection.scalars(select(JTI_TABLE.c.key)).all()
    assert key == storage_key("https://ehr.example", "secret-jti") and "secret" not in key


def test_unreachable_database_fails_closed(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'audit.db'}")
    with pytest.raises(JtiStoreUnavailable):
        DatabaseJtiStore(engine).first_use("iss", "x", time.time() + 60)


@pytest.mark.redis
@redis_only
def test_redis_entry_expires_after_the_token():
    client = redis.Redis.from_url(REDIS_URL)
    store = RedisJtiStore(client)
    jti = str(uuid.uuid4())
    assert store.first_use("iss", jti, time.time() + 1)
    ttl = client.pttl(RedisJtiStore.PREFIX + storage_key("iss", jti))
    assert 0 < ttl <= 2100  # remembered until exp (+1 s margin), not forever


def test_unreachable_redis_fails_closed():
    store = RedisJtiStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(JtiStoreUnavailable):
        store.first_use("iss", "x", time.time() + 60)


def test_factory_picks_the_database_without_redis(sqlite_url):
    engine = make_engine(sqlite_url)
    assert isinstance(jti_store_for(None, engine), DatabaseJtiStore)
    assert isinstance(jti_store_for("redis://127.0.0.1:6379/0", engine), RedisJtiStore)
