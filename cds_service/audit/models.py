"""Audit trail tables (CRD found-37: keep every hook invocation and response for disputes).

The schema is created and changed only by the Alembic migrations in ``cds_service/migrations``; these
models describe it for the store's queries. The rows hold PHI (the response cites the record), so the
database must be protected like the EHR's own data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class HookCall(Base):
    """One row per hook call: who called, what was decided on which evidence, and what was answered."""

    __tablename__ = "audit_hook_call"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    hook_instance: Mapped[str | None] = mapped_column(String(64), index=True)
    client_iss: Mapped[str | None] = mapped_column(String(512))
    service: Mapped[str] = mapped_column(String(128))
    http_status: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[float | None]
    policies: Mapped[list] = mapped_column(JSON)  # [{"policy": id, "version": v}]
    decisions: Mapped[list] = mapped_column(JSON)  # per order: verdict, criterion statuses, evidence refs
    retrieval: Mapped[dict | None] = mapped_column(JSON)  # resource type -> {"state", "reason"}
    timings: Mapped[dict | None] = mapped_column(JSON)  # stage -> milliseconds
    response: Mapped[dict | None] = mapped_column(JSON)  # the body answered to the EHR


class CardIssued(Base):
    """Card uuids of a hook call, so feedback (which names only the card) finds its decision."""

    __tablename__ = "audit_card"

    card_uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    hook_call_id: Mapped[int] = mapped_column(ForeignKey("audit_hook_call.id", ondelete="CASCADE"), index=True)


class Feedback(Base):
    """One feedback item as the EHR sent it, stored against the card uuid."""

    __tablename__ = "audit_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    card_uuid: Mapped[str] = mapped_column(String(64), index=True)
    client_iss: Mapped[str | None] = mapped_column(String(512))
    service: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str | None] = mapped_column(String(32))
    item: Mapped[dict] = mapped_column(JSON)


class Replayed(Base):
    """Ids of spooled records replayed into the store, written in the same transaction as their rows,
    so a record is replayed exactly once however often a replay is interrupted and retried."""

    __tablename__ = "audit_replayed"

    record_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    replayed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
