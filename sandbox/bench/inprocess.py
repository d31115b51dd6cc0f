"""In-process service time: the real app (auth off, in-memory audit store) through Flask's test client.

Client JWT checks are disabled for these runs (``CART_CDS_AUTH_DISABLED``): the bench measures the
hook's own work, and signature verification is a constant per-call cost measured by the security tests'
own tooling. Everything else (audit trail, input limits, JSON Schema, retrieval, facts, policies, cards)
runs as in production.
"""

from __future__ import annotations

import cProfile
import io
import json
import math
import pstats
import statistics
import time
from dataclasses import dataclass

import orjson
from flask import Flask

from cds_service import create_app
from cds_service.gunicorn_conf import tune_garbage_collection
from cds_service.response.cards import card_decision
from cds_service.settings import Settings
from sandbox.bench.records import AS_OF

HOOK_URL = "/cds-services/car-t-coverage"


def bench_settings(**values) -> Settings:
    # the bench's FHIR fakes are loopback open test servers: its hooks send no fhirAuthorization
    return Settings(**{"auth_disabled": True, "database_url": "sqlite://", "log_level": "WARNING",
                       "allow_loopback_fhir": True, "fhir_open_hosts": ("127.0.0.1",), **values})


def bench_app(**values) -> Flask:
    """The app as ``cart-cds serve`` runs it in a worker: loaded, then the garbage collector tuned."""
    app = create_app(bench_settings(**values), as_of=AS_OF)
    tune_garbage_collection()
    return app


@dataclass(frozen=True)
class Latency:
    """Per-call latencies in milliseconds, sorted."""

    samples: tuple[float, ...]

    def percentile(self, p: float) -> float:
        if not self.samples:
            return float("nan")
        index = min(len(self.samples) - 1, max(0, round(p / 100 * len(self.samples) + 0.5) - 1))
        return self.samples[index]

    @property
    def count(self) -> int:
        return len(self.samples)


def post(client, body: bytes):
    return client.post(HOOK_URL, data=body, content_type="application/json")


def verdicts(response_json: dict) -> str:
    """The decision verdicts of a hook response (``cart-cds.decision`` card extensions), comma-joined."""
    found = [(card_decision(card) or {}).get("verdict") for card in response_json.get("cards", ())]
    return ",".join(v for v in found if v) or "(no decision card)"


def time_calls(client, body: bytes, calls: int, warmup: int = 5, accept: tuple[int, ...] = (200,)) -> tuple[Latency, str]:
    """``calls`` timed hook calls after ``warmup`` untimed ones; also the last response's verdicts (or
    its HTTP status when that is not 200). A status outside ``accept`` stops the run."""
    response = None
    for _ in range(warmup):
        response = post(client, body)
    if response is not None and response.status_code not in accept:
        raise RuntimeError(f"bench hook failed: HTTP {response.status_code}")
    samples = []
    clock = time.perf_counter
    for _ in range(calls):
        started = clock()
        response = post(client, body)
        samples.append((clock() - started) * 1000)
        if response.status_code not in accept:
            raise RuntimeError(f"bench hook failed: HTTP {response.status_code}")
    outcome = verdicts(orjson.loads(response.data)) if response.status_code == 200 else f"HTTP {response.status_code}"
    return Latency(tuple(sorted(samples))), outcome


@dataclass(frozen=True)
class CpuCost:
    """Median CPU milliseconds (this thread's) of one hook call and of ``json.loads`` of the same body:
    CPU time, not wall time, so other load on a shared machine disturbs it little, and a ratio between
    the two is measured in the same run."""

    resources: int
    hook_ms: float
    parse_ms: float
    verdicts: str

    @property
    def ratio(self) -> float:
        return self.hook_ms / self.parse_ms if self.parse_ms else float("nan")


def cpu_cost(client, body: bytes, resources: int, calls: int) -> CpuCost:
    """``calls`` hook calls and as many parses, alternating (after one untimed call of each)."""
    response = post(client, body)
    if response.status_code != 200:
        raise RuntimeError(f"bench hook failed: HTTP {response.status_code}")
    json.loads(body)
    clock = time.thread_time
    hooks, parses = [], []
    for _ in range(calls):
        started = clock()
        post(client, body)
        hooks.append(clock() - started)
        started = clock()
        json.loads(body)
        parses.append(clock() - started)
    return CpuCost(resources, statistics.median(hooks) * 1000, statistics.median(parses) * 1000,
                   verdicts(orjson.loads(response.data)))


def loglog_slope(costs: list[CpuCost]) -> float:
    """Least-squares slope of log(hook CPU) over log(resources): 1.0 is linear in the record."""
    xs = [math.log(c.resources) for c in costs]
    ys = [math.log(c.hook_ms) for c in costs]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def profile_calls(client, body: bytes, calls: int, top: int = 40) -> str:
    """cProfile of ``calls`` hook calls: the ``top`` functions by cumulative time, as text."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        post(client, body)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    return out.getvalue()
