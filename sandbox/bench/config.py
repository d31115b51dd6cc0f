"""How much the benchmark runs: the full suite (issue 10's counts, under 10 minutes on 2 cores) and
the quick smoke configuration."""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS = ("inprocess", "cpu", "grown", "profile", "served", "fallback", "hanging")


@dataclass(frozen=True)
class Config:
    calls: int  # timed in-process calls per case (typical, five-orders)
    large_calls: int  # timed in-process calls of the large record
    profile_calls: int
    concurrencies: tuple[int, ...]  # served load-generator threads
    served_requests: int  # hook requests per concurrency (bounded also by served_seconds)
    served_warmup: int  # untimed hooks before the throughput runs
    echo_requests: int
    served_seconds: float
    memory_hooks: tuple[int, int]  # RSS of a one-worker server is read after this many hooks (first, last)
    fallback_calls: int
    hanging_calls: int
    cpu_calls: int  # CPU-time calls per case of the "cpu" section (typical, sandbox hooks)
    grown_sizes: tuple[int, ...]  # resources of the grown records
    grown_calls: int  # CPU-time calls per grown record
    fhir_delay_seconds: float = 0.2
    fhir_deadline_seconds: float = 3.0  # the CART_CDS_FHIR_DEADLINE_SECONDS default
    quick: bool = False


# The large record gets 200 calls, not 2,000: at its measured ~430 ms a call, 2,000 would take 14 minutes
# alone and break the 10-minute budget of the whole suite.
FULL = Config(calls=2000, large_calls=200, profile_calls=200, concurrencies=(1, 4, 8, 16),
              served_requests=1500, served_warmup=200, echo_requests=3000, served_seconds=20.0, memory_hooks=(1000, 10000),
              fallback_calls=30, hanging_calls=3, cpu_calls=50, grown_sizes=(1000, 5000, 20000), grown_calls=5)
QUICK = Config(calls=20, large_calls=3, profile_calls=5, concurrencies=(1, 4), served_requests=40, served_warmup=10,
               echo_requests=40, served_seconds=10.0, memory_hooks=(20, 120), fallback_calls=2, hanging_calls=1,
               cpu_calls=3, grown_sizes=(300, 1000), grown_calls=1, fhir_deadline_seconds=1.0, quick=True)
