"""Writing and reading the audit trail.

Writes happen after the answer is computed and never change it: a failed write is logged (without its
content) and counted in ``write_failures``, and the EHR still gets its cards. The schema comes from the
Alembic migrations (``migrate``), run at start-up or by ``cart-cds audit migrate`` -- never from
``create_all`` at request time.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from cds_service.audit.models import CardIssued, Feedback, HookCall

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_PG_MIGRATION_LOCK = 7_304_100_977  # pg_advisory_lock key: one migrating worker at a time


def make_engine(url: str) -> Engine:
    """An engine for ``url``; an in-memory SQLite database is shared by all threads (tests, demo)."""
    if url in {"sqlite://", "sqlite:///:memory:"}:
        return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"check_same_thread": False})
    return create_engine(url, pool_pre_ping=True)


def _alembic_config(connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; safe with several workers starting)."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        command.upgrade(_alembic_config(connection), "head")


def schema_is_current(engine: Engine) -> bool:
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
        return set(current) == set(ScriptDirectory.from_config(_alembic_config(connection)).get_heads())


@dataclass(frozen=True)
class HookCallRecord:
    """What one hook call leaves in the trail (built by ``capture.record_from_exchange``)."""

    hook_instance: str | None
    client_iss: str | None
    service: str
    http_status: int
    duration_ms: float | None
    policies: list = field(default_factory=list)
    decisions: list = field(default_factory=list)
    card_uuids: list = field(default_factory=list)
    retrieval: dict | None = None
    timings: dict | None = None
    response: dict | None = None
    recorded_at: datetime | None = None


class AuditStore:
    def __init__(self, engine: Engine, clock=lambda: datetime.now(timezone.utc)) -> None:
        self.engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self.write_failures = 0

    @classmethod
    def from_url(cls, url: str, *, run_migrations: bool = True) -> "AuditStore":
        engine = make_engine(url)
        if run_migrations:
            migrate(engine)
        return cls(engine)

    def close(self) -> None:
        """Release the database connections (CLI commands and tests; the service keeps its store)."""
        self.engine.dispose()

    def count_failure(self, what: str) -> None:
        """A write that did not happen: logged (reason code only) and counted, never raised."""
        with self._lock:
            self.write_failures += 1
            failures = self.write_failures
        log.error("audit write failed", exc_info=True, extra={"reason": what, "failures": failures})

    def record_hook_call(self, record: HookCallRecord) -> int | None:
        """Store one hook call; returns its row id, or None when the write failed (logged and counted)."""
        try:
            with Session(self.engine) as session, session.begin():
                row = HookCall(
                    recorded_at=record.recorded_at or self._clock(),
                    hook_instance=record.hook_instance,
                    client_iss=record.client_iss,
                    service=record.service,
                    http_status=record.http_status,
                    duration_ms=record.duration_ms,
                    policies=record.policies,
                    decisions=record.decisions,
                    retrieval=record.retrieval,
                    timings=record.timings,
                    response=record.response,
                )
                session.add(row)
                session.flush()
                # merge: an EHR that retries a hookInstance gets the same card uuids only if we reuse them
                for uuid in dict.fromkeys(record.card_uuids):
                    session.merge(CardIssued(card_uuid=uuid, hook_call_id=row.id))
                return row.id
        except (SQLAlchemyError, TypeError, ValueError):
            self.count_failure("hook-call")
            return None

    def record_feedback(self, items: list[dict], client_iss: str | None, service: str) -> bool:
        """Store feedback items (each against its ``card`` uuid); False when the write failed."""
        now = self._clock()
        try:
            with Session(self.engine) as session, session.begin():
                for item in items:
                    session.add(Feedback(
                        received_at=now, card_uuid=str(item.get("card"))[:64], client_iss=client_iss,
                        service=service, outcome=str(item.get("outcome"))[:32] if item.get("outcome") else None,
                        item=item))
            return True
        except (SQLAlchemyError, TypeError, ValueError):
            self.count_failure("feedback")
            return False

    def show(self, hook_instance: str) -> list[dict]:
        """Every stored call with this hookInstance (oldest first), each with the feedback on its cards."""
        with Session(self.engine) as session:
            calls = session.scalars(
                select(HookCall).where(HookCall.hook_instance == hook_instance).order_by(HookCall.id)).all()
            out = []
            for call in calls:
                cards = session.scalars(select(CardIssued.card_uuid).where(CardIssued.hook_call_id == call.id)).all()
                feedback = session.scalars(
                    select(Feedback).where(Feedback.card_uuid.in_(cards)).order_by(Feedback.id)).all() if cards else []
                out.append({
                    "id": call.id,
                    "recordedAt": call.recorded_at.isoformat(),
                    "hookInstance": call.hook_instance,
                    "client": call.client_iss,
                    "service": call.service,
                    "httpStatus": call.http_status,
                    "durationMs": call.duration_ms,
                    "policies": call.policies,
                    "decisions": call.decisions,
                    "retrieval": call.retrieval,
                    "timings": call.timings,
                    "response": call.response,
                    "feedback": [{"receivedAt": f.received_at.isoformat(), "client": f.client_iss, **f.item}
                                 for f in feedback],
                })
            return out

    def purge(self, older_than_days: int, now: datetime | None = None) -> int:
        """Delete calls and feedback older than the retention; returns the number of hook calls deleted."""
        cutoff = (now or self._clock()) - timedelta(days=older_than_days)
        with Session(self.engine) as session, session.begin():
            old_ids = select(HookCall.id).where(HookCall.recorded_at < cutoff)
            session.execute(delete(CardIssued).where(CardIssued.hook_call_id.in_(old_ids)))
            deleted = session.execute(delete(HookCall).where(HookCall.recorded_at < cutoff)).rowcount
            session.execute(delete(Feedback).where(Feedback.received_at < cutoff))
        return deleted
