"""Turning one HTTP exchange into an audit record, and the Flask wiring that writes it.

One path from decision to trail: the route hands over what the use case returned, once, with
``hook_answered`` (the body exactly as answered, the retrieval outcome per resource type, the stage
timings) or ``feedback_received`` (the feedback items not seen before). The record is written after the
response, so its HTTP status and duration are known. Decisions are read from the answered body's cards
(``cards.card_decision``), so what is audited is exactly what the EHR was shown.

A call the service refused (4xx, 5xx) is audited too: its ``hookInstance`` is taken from the request
body and the error body is stored as answered.

Records go through the ``AuditTrail`` (``spool``): to the store, or, while it is unreachable, to the
durable local spool, replayed later. A record neither can take is a hole in the trail, so the answer
is withheld: the EHR gets 503 (retryable) instead of a decision the payer has no record of.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Flask, Response, current_app, g, request
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import HTTPException

from cds_service import metrics
from cds_service.audit.spool import AuditSpool, AuditTrail
from cds_service.audit.store import AuditStore, HookCallRecord
from cds_service.errors import error_response
from cds_service.feedback import FeedbackItem
from cds_service.input_limits import parsed_body
from cds_service.order_sign import OrderSignOutcome
from cds_service.response.cards import card_decision
from fhir_mappings import RetrievalOutcome

log = logging.getLogger(__name__)

EXTENSION_KEY = "cart_cds.audit"  # app.extensions: the AuditStore
TRAIL_KEY = "cart_cds.audit_trail"  # app.extensions: the AuditTrail (store + spool)
_PREFIX = "/cds-services/"
_NOT_AUDITED = {401, 503}  # refused before the service saw the request (unauthenticated, auth store down)
_ANSWER = "audit_answer"  # flask.g: the _Answer handed over by the route
_FEEDBACK = "audit_feedback"  # flask.g: the new feedback items handed over by the route


@dataclass(frozen=True)
class _Answer:
    hook_instance: str
    body: dict
    outcome: OrderSignOutcome


def hook_answered(hook_instance: str, outcome: OrderSignOutcome, body: dict) -> None:
    """Hand the trail an answered hook call: ``body`` is ``outcome.response`` in the JSON form the route
    sends (serialised once, by the route). Call inside the request."""
    setattr(g, _ANSWER, _Answer(hook_instance, body, outcome))


def feedback_received(items: Iterable[FeedbackItem]) -> None:
    """Hand the trail the feedback items to store (the route passes only those not seen before, so a
    repeated submission adds no row). Call inside the request."""
    setattr(g, _FEEDBACK, [item.as_json() for item in items])


def _outcome_json(outcome: RetrievalOutcome) -> dict:
    out = {"state": outcome.state.value}
    if outcome.reason:
        out["reason"] = outcome.reason
    return out


def decisions_from_response(body: Any) -> tuple[list, list, list]:
    """(decisions, policies, card uuids) found in a CDS Hooks response body."""
    decisions, policies, uuids = [], [], []
    cards = body.get("cards") if isinstance(body, dict) else None
    for card in cards if isinstance(cards, list) else ():
        if not isinstance(card, dict):
            continue
        if isinstance(card.get("uuid"), str):
            uuids.append(card["uuid"][:64])
        decision = card_decision(card)
        if decision is None:
            continue
        criteria = [c for c in decision.get("criteria") or () if isinstance(c, dict)]
        evidence = sorted({e["reference"] for c in criteria for e in c.get("evidence") or ()
                           if isinstance(e, dict) and isinstance(e.get("reference"), str)})
        decisions.append({
            "card": card.get("uuid"),
            "order": decision.get("order"),
            "policy": decision.get("policy"),
            "policyVersion": decision.get("policyVersion"),
            "verdict": decision.get("verdict"),
            "criteria": {c.get("id"): c.get("status") for c in criteria if isinstance(c.get("id"), str)},
            "evidence": evidence,
        })
        policy = {"policy": decision.get("policy"), "version": decision.get("policyVersion")}
        if policy not in policies:
            policies.append(policy)
    return decisions, policies, uuids


_NOT_PARSED = object()


def _request_hook_instance() -> Any:
    """The ``hookInstance`` of a request the route refused, from the body the input limits parsed
    (parsed here only when they did not)."""
    body = parsed_body(_NOT_PARSED)
    if body is _NOT_PARSED:
        try:
            body = orjson.loads(request.get_data(cache=True))
        except (orjson.JSONDecodeError, HTTPException, ParseException, NoMoreData):  # not JSON; over the size
            return None  # limit (413); malformed framing: the refused call is recorded without a hookInstance
    return body.get("hookInstance") if isinstance(body, dict) else None


def _error_json(response: Response) -> Any:
    if not response.is_json or response.is_streamed:
        return None
    try:
        return orjson.loads(response.get_data())
    except orjson.JSONDecodeError:
        return None


def _client_iss() -> str | None:
    client = g.get("cds_client")
    return client.iss if client is not None else None


def record_from_exchange(service: str, response: Response, duration_ms: float) -> HookCallRecord:
    answer: _Answer | None = g.get(_ANSWER)
    if answer is None:  # refused: the hookInstance from the request, the error body as answered
        hook_instance, body, outcome = _request_hook_instance(), _error_json(response), None
    else:
        hook_instance, body, outcome = answer.hook_instance, answer.body, answer.outcome
    decisions, policies, uuids = decisions_from_response(body)
    return HookCallRecord(
        hook_instance=hook_instance[:64] if isinstance(hook_instance, str) else None,
        client_iss=_client_iss(),
        service=service,
        http_status=response.status_code,
        duration_ms=round(duration_ms, 3),
        policies=policies,
        decisions=decisions,
        card_uuids=uuids,
        retrieval={str(k): _outcome_json(v) for k, v in outcome.retrieval.items()} if outcome and outcome.retrieval else None,
        timings={str(k): float(v) for k, v in outcome.timings.items()} if outcome and outcome.timings else None,
        response=body if isinstance(body, dict) else None,
    )


def _service_and_kind(path: str) -> tuple[str, str] | None:
    parts = path[len(_PREFIX):].split("/") if path.startswith(_PREFIX) else []
    if len(parts) == 1 and parts[0]:
        return parts[0][:128], "hook"
    if len(parts) == 2 and parts[0] and parts[1] == "feedback":
        return parts[0][:128], "feedback"
    return None


def install_audit(app: Flask, store: AuditStore, spool: AuditSpool | None = None) -> None:
    """Record every hook call and every accepted feedback POST under /cds-services/<id>, through the
    ``spool`` while the store is unreachable (without one, such an answer is withheld)."""
    app.extensions[EXTENSION_KEY] = store
    trail = app.extensions[TRAIL_KEY] = AuditTrail(store, spool)

    @app.before_request
    def start_audit_clock():
        g.audit_started = time.perf_counter()

    @app.after_request
    def write_audit(response: Response) -> Response:
        target = _service_and_kind(request.path) if request.method == "POST" else None
        if target is None or response.status_code in _NOT_AUDITED:
            return response
        service, kind = target
        try:
            if kind == "hook":
                started = g.get("audit_started", time.perf_counter())
                where, ref = trail.hook_call(record_from_exchange(service, response, (time.perf_counter() - started) * 1000))
                _log_recorded("hook call", where, ref, response.status_code)
            elif response.status_code < 300 and (items := g.get(_FEEDBACK)):
                where, ref = trail.feedback(items, _client_iss(), service)
                _log_recorded("feedback", where, ref, response.status_code)
        except Exception:  # neither the store nor the spool took it: no answer without a record
            metrics.audit_write("hook-call" if kind == "hook" else kind, written=False)
            log.error("audit record not written; answer withheld", exc_info=True, extra={"reason": kind})
            withheld = error_response(503, "the answer could not be recorded in the audit trail; retry later")
            withheld.headers["Retry-After"] = "5"
            return withheld
        return response


def _log_recorded(what: str, where: str, ref: int | None, status: int) -> None:
    """The log and the metrics name where the record went: "audited" only once the store has it (a spooled
    record is a store write that failed, kept for replay)."""
    metrics.audit_write(what.replace(" ", "-"), written=where == "stored")
    if where == "stored":
        log.info(f"{what} audited", extra={"auditId": ref, "status": status})
    else:
        log.warning(f"{what} spooled for the audit store", extra={"count": ref, "status": status})


def readiness() -> dict:
    """The audit trail's readiness for ``/readyz`` (see ``AuditTrail.state``). Call inside a request."""
    return current_app.extensions[TRAIL_KEY].state()
