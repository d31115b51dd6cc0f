"""``cart-cds audit``: migrate the audit database, show one hook call, purge old records.

The database comes from ``CART_CDS_DATABASE_URL`` (or ``--database-url``), the default retention from
``CART_CDS_AUDIT_RETENTION_DAYS``, the same variables the service reads.
"""

from __future__ import annotations

import sys
from contextlib import closing

import click
import orjson

from cds_service.audit.store import AuditStore, make_engine
from cds_service.audit.store import migrate as run_migrations
from cds_service.dtr.store import ContextStore
from cds_service.settings import Settings

_DEFAULT_DATABASE_URL = Settings().database_url  # the service's own default, declared once in settings


def _database_option(command):
    return click.option(
        "--database-url", envvar="CART_CDS_DATABASE_URL", default=_DEFAULT_DATABASE_URL, show_default=True,
        show_envvar=True, help="SQLAlchemy URL of the audit database.")(command)


@click.group("audit")
def audit() -> None:
    """The audit trail of hook calls (holds PHI: protect the database like the EHR's data)."""


@audit.command("migrate")
@_database_option
def migrate_command(database_url: str) -> None:
    """Create or upgrade the audit tables to the newest migration."""
    engine = make_engine(database_url)
    try:
        run_migrations(engine)
    finally:
        engine.dispose()
    click.echo("audit database is at the newest migration")


@audit.command("show")
@click.argument("hook_instance")
@_database_option
def show_command(hook_instance: str, database_url: str) -> None:
    """Print the stored record(s) of HOOK_INSTANCE as JSON, with the feedback on its cards."""
    with closing(AuditStore.from_url(database_url)) as store:
        records = store.show(hook_instance)
    if not records:
        click.echo(f"no audit record for hookInstance {hook_instance}", err=True)
        sys.exit(1)
    click.echo(orjson.dumps(records[0] if len(records) == 1 else records, option=orjson.OPT_INDENT_2).decode())


@audit.command("purge")
@click.option("--older-than", "days", type=click.IntRange(min=1), envvar="CART_CDS_AUDIT_RETENTION_DAYS",
              required=True, show_envvar=True, metavar="DAYS", help="Delete records older than DAYS days.")
@_database_option
def purge_command(days: int, database_url: str) -> None:
    """Delete hook calls and feedback older than the retention period, and expired DTR contexts."""
    with closing(AuditStore.from_url(database_url)) as store:
        deleted = store.purge(days)
        contexts = ContextStore(store.engine).purge(days)
    click.echo(f"deleted {deleted} hook call record(s) older than {days} days")
    click.echo(f"deleted {contexts} DTR context(s) expired or older than {days} days")
