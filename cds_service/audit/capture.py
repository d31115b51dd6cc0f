"""Turning one HTTP exchange into an audit record, and the Flask wiring that writes it.

One path from decision to trail: the route hands over what the use case returned, once, with
``hook_answered`` (the body exactly as answered, the retrieval outcome per resource type, the stage
timings) or ``feedback_received`` (the feedback items not seen before). The record is written after the
response, so its HTTP status and duration are known. Decisions are read from the answered body's cards
(``cards.card_decision``), so what is audited is exactly what the EHR was shown.

A call the service refused (4xx, 5xx) is audited too: its ``hookInstance`` is taken from the request
body and the error body is stored as answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Flask, Response, g, request

from cds_service.audit.store import AuditStore, HookCallRecord
from cds_service.feedback import FeedbackItem
from cds_service.input_limits import parsed_body
from cds_service.order_sign import OrderSignOutcome
from cds_service.response.cards import card_decision
from fhir_mappings import RetrievalOutcome

log = logging.getLogger(__name__)

EXTENSION_KEY = "cart_cds.audit"
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
        except orjson.JSONDecodeError:
            return None
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


def install_audit(app: Flask, store: AuditStore) -> None:
    """Record every hook call and every accepted feedback POST under /cds-services/<id>."""
    app.extensions[EXTENSION_KEY] = store

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
                audit_id = store.record_hook_call(
                    record_from_exchange(service, response, (time.perf_counter() - started) * 1000))
                log.info("hook call audited", extra={"auditId": audit_id, "status": response.status_code})
            elif response.status_code < 300 and (items := g.get(_FEEDBACK)):
                store.record_feedback(items, _client_iss(), service)
        except Exception:  # the EHR must get its answer whatever happens to the trail
            store.count_failure("capture")
        return response
