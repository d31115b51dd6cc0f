"""The audit database under test: a SQLite file always, PostgreSQL when ``CART_CDS_TEST_POSTGRES_URL`` is set
(left empty for the next test)."""

from __future__ import annotations

import pytest

from cds_service.audit.store import AuditStore, make_engine
from tests.cds_service.store_backends import DATABASES, POSTGRES_URL


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.sqlite3'}"
        return
    yield POSTGRES_URL
    engine = make_engine(POSTGRES_URL)  # leave the shared database empty for the next test
    with engine.begin() as connection:  # every table the migrations made, whatever they are now
        tables = connection.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").scalars().all()
        for table in tables:
            connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    engine.dispose()


@pytest.fixture
def store(database_url):
    store = AuditStore.from_url(database_url)
    yield store
    store.engine.dispose()
