"""Turning one HTTP exchange into an audit record, and the Flask wiring that writes it.

The decision itself is read from the response the EHR received (each card's ``cart-cds.decision``
extension: order, policy, version, verdict, criteria with their evidence), so what is audited is exactly
what was answered. What the response does not show -- how retrieval went and how long each stage took --
the use case hands over with ``note(retrieval=..., timings=...)`` during the request.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

import orjson
from flask import Flask, Response, g, request

from cds_service.audit.store import AuditStore, HookCallRecord
from cds_service.input_limits import parsed_body
from cds_service.response.cards import DECISION_EXTENSION

log = logging.getLogger(__name__)

EXTENSION_KEY = "cart_cds.audit"
_PREFIX = "/cds-services/"
_NOT_AUDITED = {401, 503}  # refused before the service saw the request (unauthenticated, auth store down)


def note(*, retrieval: Mapping[str, Any] | None = None, timings: Mapping[str, float] | None = None,
         hook_instance: str | None = None) -> None:
    """Hand the audit trail what the response cannot show: retrieval outcome per resource type
    (``RetrievalOutcome`` or a dict) and stage timings in milliseconds; and the ``hookInstance`` of a
    request the route already parsed (so the trail need not parse a large body a second time). Call
    inside a request."""
    if hook_instance is not None:
        g.audit_hook_instance = hook_instance
    if retrieval is not None:
        g.audit_retrieval = {str(k): _outcome_json(v) for k, v in retrieval.items()}
    if timings is not None:
        g.audit_timings = {str(k): float(v) for k, v in timings.items()}


def _outcome_json(outcome: Any) -> Any:
    state = getattr(outcome, "state", None)
    if state is not None:
        out = {"state": getattr(state, "value", str(state))}
        if getattr(outcome, "reason", None):
            out["reason"] = outcome.reason
        return out
    return outcome


def decisions_from_response(body: Any) -> tuple[list, list, list]:
    """(decisions, policies, card uuids) found in a CDS Hooks response body."""
    decisions, policies, uuids = [], [], []
    cards = body.get("cards") if isinstance(body, dict) else None
    for card in cards if isinstance(cards, list) else ():
        if not isinstance(card, dict):
            continue
        if isinstance(card.get("uuid"), str):
            uuids.append(card["uuid"][:64])
        extension = card.get("extension")
        decision = extension.get(DECISION_EXTENSION) if isinstance(extension, dict) else None
        if not isinstance(decision, dict):
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


def _request_json() -> Any:
    """The request body as JSON (None when it is not JSON), taken from the input limits when they parsed
    it already."""
    body = parsed_body(_NOT_PARSED)
    if body is not _NOT_PARSED:
        return body
    try:
        return orjson.loads(request.get_data(cache=True))
    except orjson.JSONDecodeError:
        return None


def _response_json(response: Response) -> Any:
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
    hook_instance = g.get("audit_hook_instance")
    if hook_instance is None:  # a request the route refused before parsing it
        body = _request_json()
        hook_instance = body.get("hookInstance") if isinstance(body, dict) else None
    answer = _response_json(response)
    decisions, policies, uuids = decisions_from_response(answer)
    return HookCallRecord(
        hook_instance=hook_instance[:64] if isinstance(hook_instance, str) else None,
        client_iss=_client_iss(),
        service=service,
        http_status=response.status_code,
        duration_ms=round(duration_ms, 3),
        policies=policies,
        decisions=decisions,
        card_uuids=uuids,
        retrieval=g.get("audit_retrieval"),
        timings=g.get("audit_timings"),
        response=answer if isinstance(answer, dict) else None,
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
            elif response.status_code < 300:
                body = _request_json()
                items = body.get("feedback") if isinstance(body, dict) else None
                if isinstance(items, list):
                    store.record_feedback([i for i in items if isinstance(i, dict)], _client_iss(), service)
        except Exception:  # the EHR must get its answer whatever happens to the trail
            store.count_failure("capture")
        return response
