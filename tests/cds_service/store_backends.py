"""Real PostgreSQL / Redis for the audit store and jti store tests, when CI provides them.

``CART_CDS_TEST_POSTGRES_URL`` (an SQLAlchemy URL, e.g. ``postgresql+psycopg://postgres@127.0.0.1:54329/x``)
and ``CART_CDS_TEST_REDIS_URL`` are exported by ``.ci/run`` after it starts Debian's postgresql and
redis-server on loopback; without them these backends are skipped (SQLite always runs).
"""

from __future__ import annotations

import os

import pytest

POSTGRES_URL = os.environ.get("CART_CDS_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("CART_CDS_TEST_REDIS_URL")

postgres_only = pytest.mark.skipif(not POSTGRES_URL, reason="CART_CDS_TEST_POSTGRES_URL not set")
redis_only = pytest.mark.skipif(not REDIS_URL, reason="CART_CDS_TEST_REDIS_URL not set")

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=[pytest.mark.postgres, postgres_only]),
]
JTI_STORE_BACKENDS = [  # the jti store: the audit database by default, Redis when configured
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=[pytest.mark.postgres, postgres_only]),
    pytest.param("redis", id="redis", marks=[pytest.mark.redis, redis_only]),
]


def fresh_jti_store():
    """The default jti store on a new in-memory audit database (one per verifier under test)."""
    from cds_service.audit.store import make_engine, migrate
    from cds_service.auth.jti_store import DatabaseJtiStore

    engine = make_engine("sqlite://")
    migrate(engine)
    return DatabaseJtiStore(engine)
