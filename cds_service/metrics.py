"""Prometheus metrics: every definition in one place, one-line calls at the seams, ``GET /metrics``.

What is counted (all names prefixed ``cart_cds_``):

| metric | labels | seam |
| --- | --- | --- |
| ``hook_calls_total`` | service, verdict, status | after each ``POST /cds-services/<id>`` (this module) |
| ``hook_duration_seconds`` (histogram) | service | same: request in to response out, what the EHR waits for |
| ``fhir_queries_total``, ``fhir_query_duration_seconds`` | outcome | each GET to the EHR's FHIR server (``FhirClient``) |
| ``prefetch_keys_total`` | key, state | each prefetch key as interpreted (``retrieve_record``) |
| ``jwt_refusals_total`` | reason | each refused client JWT (``auth.guard``) |
| ``audit_writes_total`` | kind, outcome | each audit write, written or failed (``AuditStore``) |
| ``policy_version_info`` (gauge, 1) | policy, version, in_force_from | each policy version loaded at start |

**No patient data in any label.** Label values come only from closed sets the service defines: the
service id it serves, the four verdicts, HTTP status codes, retrieval and prefetch states, the prefetch
keys of discovery, the verifier's refusal codes, the loaded policies' ids and versions. Anything else a
request could inject (an unknown service id, an odd reason string) is recorded as ``other``, which also
keeps the number of series bounded whatever clients send.

**Cost.** The verdict label is read back from the answered body: about 70 us for a typical 27 KB
response (0.6 % of a typical hook's 12.5 ms); the other calls are a counter increment each.

**Several processes.** Under gunicorn each worker counts in its own memory, so ``/metrics`` in one
worker would show a fraction. ``prometheus_client``'s multiprocess mode writes every worker's values to
files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them. The library picks its mode when it is
first imported, so it is imported lazily here (first use), and ``cart-cds serve`` sets the directory
before building the app (``gunicorn_conf.multiprocess_metrics``); a worker's live gauges are dropped
when it exits. Without the variable (tests, ``cart-cds evaluate``, ``--dev``) metrics live in-process.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from types import SimpleNamespace

import orjson
from flask import Blueprint, Flask, Response, g, request

from cds_service.response.cards import card_decision

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"
NONE = "none"  # a hook answered without any decision (nothing in scope, or an error)
# The verdicts, worst first: a hook with several decisions is counted under its worst one.
VERDICTS = ("does-not-meet", "indeterminate", "documentation-incomplete", "meets-policy")
_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.5, 5.0, 10.0)

blueprint = Blueprint("metrics", __name__)


@cache
def _metrics() -> SimpleNamespace:
    """The metric objects, created on first use (see the module docstring for why not at import)."""
    from prometheus_client import Counter, Gauge, Histogram

    return SimpleNamespace(
        # the mode the library chose on import: /metrics reads the files only when values go to them
        multiprocess=bool(os.environ.get(MULTIPROC_ENV)),
        hook_calls=Counter("cart_cds_hook_calls", "Hook calls answered, by service, worst verdict and HTTP status.",
                           ["service", "verdict", "status"]),
        hook_duration=Histogram("cart_cds_hook_duration_seconds", "Time to answer a hook call.",
                                ["service"], buckets=_LATENCY_BUCKETS),
        fhir_queries=Counter("cart_cds_fhir_queries", "Requests to the EHR's FHIR server, by outcome.", ["outcome"]),
        fhir_duration=Histogram("cart_cds_fhir_query_duration_seconds", "Time of one FHIR request, by outcome.",
                                ["outcome"], buckets=_LATENCY_BUCKETS),
        prefetch=Counter("cart_cds_prefetch_keys", "Prefetch keys as interpreted, by key and state.", ["key", "state"]),
        jwt_refusals=Counter("cart_cds_jwt_refusals", "Client JWTs refused, by reason.", ["reason"]),
        audit_writes=Counter("cart_cds_audit_writes", "Audit trail writes, by kind and outcome.", ["kind", "outcome"]),
        policy_versions=Gauge("cart_cds_policy_version_info", "Policy versions loaded (1 per version).",
                              ["policy", "version", "in_force_from"], multiprocess_mode="max"),
    )


def _code(value: object) -> str:
    """A log-safe short code as a label, or ``other``."""
    return value if isinstance(value, str) and _CODE.fullmatch(value) else OTHER


# --------------------------------------------------------------------------------------------------
# One-line calls for the seams
# --------------------------------------------------------------------------------------------------


@contextmanager
def fhir_query() -> Iterator[None]:
    """Around one FHIR request: counts it and its duration under the failure's reason code, or ``ok``."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except Exception as exc:
        outcome = _code(getattr(exc, "reason", None))
        raise
    finally:
        metrics = _metrics()
        metrics.fhir_queries.labels(outcome).inc()
        metrics.fhir_duration.labels(outcome).observe(time.perf_counter() - started)


def prefetch_states(items: Mapping[str, object]) -> None:
    """The state of each prefetch key of one hook call (``PrefetchItem.state``)."""
    counter = _metrics().prefetch
    for key, item in items.items():
        state = getattr(item, "state", None)
        counter.labels(_code(key), _code(getattr(state, "value", state))).inc()


def jwt_refused(reason: str) -> None:
    _metrics().jwt_refusals.labels(_code(reason)).inc()


def audit_write(kind: str, written: bool) -> None:
    _metrics().audit_writes.labels(_code(kind), "written" if written else "failed").inc()


def policies_loaded(policies: Iterable) -> None:
    gauge = _metrics().policy_versions
    for policy in policies:
        gauge.labels(policy.id, policy.version, policy.in_force_from.isoformat()).set(1)


# --------------------------------------------------------------------------------------------------
# Hook calls, measured around the request; the /metrics endpoint
# --------------------------------------------------------------------------------------------------


def worst_verdict(body: bytes) -> str:
    """The worst verdict among the decisions of a CDS Hooks response body, or ``none``."""
    try:
        cards = orjson.loads(body).get("cards") or ()
    except (orjson.JSONDecodeError, AttributeError):
        return NONE
    found = {(card_decision(card) or {}).get("verdict") for card in cards}
    return next((v for v in VERDICTS if v in found), NONE)


def install_metrics(app: Flask, services: Iterable[str], policies: Iterable) -> None:
    """Measure every hook call of ``app`` (a service id outside ``services`` is counted as ``other``),
    record the loaded policy versions, and serve ``GET /metrics``."""
    known = frozenset(services)
    policies_loaded(policies)

    @app.before_request
    def start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def count_hook_call(response: Response) -> Response:
        if request.method != "POST" or request.url_rule is None or request.url_rule.endpoint != "cds_services.call_service":
            return response
        service = (request.view_args or {}).get("service_id")
        service = service if service in known else OTHER
        verdict = worst_verdict(response.get_data()) if response.status_code == 200 else NONE
        metrics = _metrics()
        metrics.hook_calls.labels(service, verdict, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            metrics.hook_duration.labels(service).observe(time.perf_counter() - started)
        return response

    app.register_blueprint(blueprint)


@blueprint.get("/metrics")
def metrics_endpoint() -> Response:
    """The Prometheus text exposition: summed over every worker's files in multiprocess mode."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
    )
    from prometheus_client.multiprocess import MultiProcessCollector

    if _metrics().multiprocess:  # (the metric families exist, at zero, before their first event)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
