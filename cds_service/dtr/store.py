"""The DTR context store: what the order-sign hook decided, kept by CRD ``coverage-assertion-id`` so that a
later ``$questionnaire-package`` (prefill) or ``$evaluate`` (re-decision) can be answered without the EHR.

Written by the hook route (``keep_decisions``), once per answered hook, *before* the answer leaves: an
EHR may launch DTR the moment it reads the coverage-information, and the context must already be there.
Contexts are read from the answered body's coverage-information extensions (the assertion id, the
Coverage, the order each one was written on), so what is kept is exactly what the EHR was told; the
decisions themselves come from the use case's outcome (their stored form, ``context.to_json``, is
loss-free). No coverage-information (the EHR switched it off, or no Coverage was found) -> nothing to
link a DTR call to -> nothing kept.

PHI: a row holds the member's decision with its evidence, like an audit row, so it lives in the audit
database (same protection, table ``dtr_context``, Alembic migration ``0002``) and is never logged. It is
kept only as long as it can be used: ``expires`` is ``CONTEXT_DAYS`` after the hook (a DTR session follows
the order it documents; a later one signs the order again), never longer than the audit retention, and
expired rows are deleted on every write and by ``cart-cds audit purge``. The assertion id is the key: a
repeated hook with the same id replaces its context (the newest decision is the one the EHR holds).

A failed write is logged (reason only) and counted; the hook's answer is unchanged (the package is then
served unprefilled, 404 for the context, which a DTR app shows).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import JSON, DateTime, String, delete, insert, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from cds_service.audit.capture import EXTENSION_KEY as AUDIT_KEY
from cds_service.audit.models import Base
from cds_service.dtr.context import DecisionContext, from_json, to_json
from cds_service.dtr.routes import CONTEXT_STORE_KEY
from cds_service.response.coverage_information import COVERAGE_INFORMATION_URL
from policies import PolicyDecision

log = logging.getLogger(__name__)

CONTEXT_DAYS = 30


class StoredContext(Base):
    """One ``DecisionContext`` in its JSON form, by assertion id."""

    __tablename__ = "dtr_context"

    assertion_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    context: Mapped[dict] = mapped_column(JSON)


def assertions(body: dict) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``assertion id -> (Coverage reference, order references)`` from the coverage-information
    extensions of an answered CDS Hooks body (each ``update`` action's resource is the draft order)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for action in body.get("systemActions") or ():
        resource = action.get("resource") or {}
        order = f"{resource.get('resourceType')}/{resource.get('id')}"
        for extension in resource.get("extension") or ():
            if extension.get("url") != COVERAGE_INFORMATION_URL:
                continue
            parts = {p.get("url"): p for p in extension.get("extension") or ()}
            assertion_id = (parts.get("coverage-assertion-id") or {}).get("valueString")
            coverage = ((parts.get("coverage") or {}).get("valueReference") or {}).get("reference")
            if assertion_id and coverage:
                orders = found.setdefault(assertion_id, (coverage, []))[1]
                if order not in orders:
                    orders.append(order)
    return {key: (coverage, tuple(orders)) for key, (coverage, orders) in found.items()}


def decision_contexts(body: dict, decisions: Iterable[PolicyDecision], patient: str,
                      expires: datetime) -> list[DecisionContext]:
    """One context per assertion in ``body``, holding the decisions made for its orders and Coverage."""
    decisions = tuple(decisions)
    return [
        DecisionContext(assertion_id, patient, coverage, orders,
                        tuple(d for d in decisions if d.order in orders and d.coverage == coverage), expires)
        for assertion_id, (coverage, orders) in assertions(body).items()
    ]


class ContextStore:
    """``find(assertion_id)`` for the DTR routes, ``keep`` for the hook, ``purge`` for retention."""

    def __init__(self, engine: Engine, *, context_days: int = CONTEXT_DAYS, retention_days: int | None = None,
                 clock=lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.lifetime = timedelta(days=min(context_days, retention_days or context_days))
        self._clock = clock
        self._lock = threading.Lock()
        self.write_failures = 0

    def expiry(self) -> datetime:
        return self._clock() + self.lifetime

    def keep(self, contexts: Iterable[DecisionContext]) -> bool:
        """Store (or replace) each context and drop expired ones; False when the write failed."""
        now = self._clock()
        rows = [{"assertion_id": c.assertion_id, "recorded_at": now, "expires_at": c.expires,
                 "context": to_json(c)} for c in contexts]
        if not rows:
            return True
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(StoredContext).where(or_(
                    StoredContext.assertion_id.in_([r["assertion_id"] for r in rows]),
                    StoredContext.expires_at <= now)))
                connection.execute(insert(StoredContext), rows)
            return True
        except (SQLAlchemyError, TypeError, ValueError):
            with self._lock:
                self.write_failures += 1
            log.exception("DTR context write failed", extra={"failures": self.write_failures})
            return False

    def find(self, assertion_id: str) -> DecisionContext | None:
        """The context as kept (expired ones too, so the package can say "expired"), or None."""
        with self.engine.connect() as connection:
            data = connection.scalar(select(StoredContext.context).where(StoredContext.assertion_id == assertion_id))
        return None if data is None else from_json(data)

    def purge(self, older_than_days: int, now: datetime | None = None) -> int:
        """Delete expired contexts and those older than the audit retention; returns how many."""
        now = now or self._clock()
        with self.engine.begin() as connection:
            return connection.execute(delete(StoredContext).where(or_(
                StoredContext.expires_at <= now,
                StoredContext.recorded_at < now - timedelta(days=older_than_days)))).rowcount


def install_context_store(app: Flask, retention_days: int) -> ContextStore:
    """Keep contexts in the audit trail's database (the audit store must be installed first)."""
    store = ContextStore(app.extensions[AUDIT_KEY].engine, retention_days=retention_days)
    app.extensions[CONTEXT_STORE_KEY] = store
    return store


def keep_decisions(body: dict, decisions: Iterable[PolicyDecision], patient_id: str) -> None:
    """The hook route's one hand-over: keep the contexts of the coverage-information in ``body``."""
    store: ContextStore | None = current_app.extensions.get(CONTEXT_STORE_KEY)
    if store is not None:
        store.keep(decision_contexts(body, decisions, f"Patient/{patient_id}", store.expiry()))
