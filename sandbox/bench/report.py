"""The results of one benchmark run and their Markdown rendering (RESULTS.md and the printed table)."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from sandbox.bench.config import Config
from sandbox.bench.inprocess import CpuCost, Latency, loglog_slope
from sandbox.bench.served import LoadResult

PACKAGES = ("flask", "werkzeug", "gunicorn", "fhir.resources", "pydantic", "orjson", "requests", "SQLAlchemy")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Results:
    config: Config
    sections: tuple[str, ...]
    cases: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (bytes, resources)
    inprocess: dict[str, tuple[Latency, str]] = field(default_factory=dict)  # name -> (latency, verdicts)
    profile_head: str = ""
    served: dict[int, LoadResult] = field(default_factory=dict)
    echo: dict[int, LoadResult] = field(default_factory=dict)
    hooks_sent: int = 0
    rss_first: dict[int, float] = field(default_factory=dict)
    rss_last: dict[int, float] = field(default_factory=dict)
    rss_workers: dict[int, float] = field(default_factory=dict)  # the throughput server's workers, at its end
    fallback: tuple[Latency, str] | None = None
    fallback_queries: float = 0.0
    fallback_connections: int = 0  # TCP connections the fake FHIR server saw over all fallback hooks
    hanging: tuple[Latency, str] | None = None
    elapsed_seconds: float = 0.0
    load: list[float] = field(default_factory=list)  # 1-minute load average at each step of the run
    inprocess_connections: int = 0  # connections the in-process hooks opened to their fhirServer
    cpu_typical: CpuCost | None = None
    cpu_sandbox: dict[str, CpuCost] = field(default_factory=dict)  # scenario -> its complete-prefetch hook
    grown: list[CpuCost] = field(default_factory=list)

    def median_sandbox(self) -> CpuCost | None:
        """The sandbox hook of median CPU ratio to ``json.loads``."""
        ranked = sorted(self.cpu_sandbox.values(), key=lambda c: c.ratio)
        return ranked[len(ranked) // 2] if ranked else None

    def fixed_cost_ms(self) -> float:
        """Intercept of the least-squares line of hook CPU over ``json.loads`` CPU (a proxy for the
        record's size) across the sandbox hooks and the typical record: the per-hook cost that does not
        grow with the record."""
        costs = [*self.cpu_sandbox.values(), *([self.cpu_typical] if self.cpu_typical else [])]
        if len(costs) < 2:
            return float("nan")
        mx = sum(c.parse_ms for c in costs) / len(costs)
        my = sum(c.hook_ms for c in costs) / len(costs)
        spread = sum((c.parse_ms - mx) ** 2 for c in costs)
        slope = sum((c.parse_ms - mx) * (c.hook_ms - my) for c in costs) / spread if spread else 0.0
        return my - slope * mx


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _environment() -> list[str]:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    return [
        f"- CPUs: {os.cpu_count()} ({cpu})",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}",
        "- " + ", ".join(versions),
        f"- commit {_git_head()}",
        f"- run at {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
    ]


def _load_line(load: list[float]) -> list[str]:
    if not load:
        return []
    return [f"- machine load (1-minute load average, sampled at each step): min {min(load):.1f}, "
            f"median {sorted(load)[len(load) // 2]:.1f}, max {max(load):.1f} on {os.cpu_count()} CPUs"]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git_head() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return head or "unknown"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def targets(results: Results) -> list[tuple[str, str, str, bool | None]]:
    """(what, target, measured, met) for each target of issue 10 that this run measured."""
    rows: list[tuple[str, str, str, bool | None]] = []
    typical = results.inprocess.get("typical")
    if typical:
        lat = typical[0]
        rows.append(("typical record, in-process", "p50 <= 15 ms, p99 <= 40 ms",
                     f"p50 {_ms(lat.percentile(50))} ms, p99 {_ms(lat.percentile(99))} ms",
                     lat.percentile(50) <= 15 and lat.percentile(99) <= 40))
    large = results.inprocess.get("large")
    if large:
        rows.append(("large record (5,000 Observations), in-process", "p50 <= 150 ms",
                     f"p50 {_ms(large[0].percentile(50))} ms", large[0].percentile(50) <= 150))
    typical_cpu, sandbox_cpu = results.cpu_typical, results.median_sandbox()
    if typical_cpu and sandbox_cpu:
        rows.append(("typical hook CPU / `json.loads` of the same body (issue 18)", "<= 5x, typical record and median "
                     "sandbox complete-prefetch hook",
                     f"typical {typical_cpu.ratio:.1f}x ({_ms(typical_cpu.hook_ms)} / {typical_cpu.parse_ms:.2f} ms); "
                     f"median sandbox {sandbox_cpu.ratio:.1f}x", typical_cpu.ratio <= 5 and sandbox_cpu.ratio <= 5))
        fixed = results.fixed_cost_ms()
        rows.append(("fixed per-hook CPU (issue 18)", "<= 1 ms", f"{fixed:.1f} ms", fixed <= 1))
    if len(results.grown) > 1:
        slope, largest = loglog_slope(results.grown), results.grown[-1]
        rows.append(("grown records, in-process (issue 18)", "log-log slope <= 1.10; the largest well under 1 s",
                     f"slope {slope:.2f}; {largest.resources} resources {largest.hook_ms:.0f} ms CPU",
                     slope <= 1.10 and largest.hook_ms < 1000))
    if results.inprocess or results.cpu_typical or results.grown:
        rows.append(("in-process hooks make no network call (issue 18)", "0 connections to their fhirServer",
                     f"{results.inprocess_connections} connections", results.inprocess_connections == 0))
    if results.served and results.echo:
        best = max(results.served.values(), key=lambda r: r.per_second)
        ceiling = max(results.echo.values(), key=lambda r: r.per_second)
        ratio = best.per_second / ceiling.per_second if ceiling.per_second else 0.0
        rows.append(("served throughput, typical record", ">= 150 hooks/s and >= 0.5 of the echo ceiling",
                     f"{best.per_second:.0f} hooks/s (concurrency {best.concurrency}); echo {ceiling.per_second:.0f}/s;"
                     f" ratio {ratio:.2f}", best.per_second >= 150 and ratio >= 0.5 and best.errors == 0))
    if results.fallback:
        lat = results.fallback[0]
        rows.append(("fallback, 200 ms per query", "<= 300 ms per hook",
                     f"p50 {_ms(lat.percentile(50))} ms, max {_ms(lat.samples[-1])} ms"
                     f" ({results.fallback_queries:.0f} queries per hook)", lat.samples[-1] <= 300))
    if results.hanging:
        lat = results.hanging[0]
        limit = results.config.fhir_deadline_seconds * 1000 + 250
        rows.append(("hanging FHIR server", f"answer within deadline + 250 ms ({limit:.0f} ms)",
                     f"max {_ms(lat.samples[-1])} ms (deadline {results.config.fhir_deadline_seconds * 1000:.0f} ms)",
                     lat.samples[-1] <= limit))
    if results.rss_first and results.rss_last:
        worst = max((*results.rss_last.values(), *results.rss_workers.values()))
        growth = max((results.rss_last[pid] / results.rss_first[pid] - 1) * 100
                     for pid in results.rss_last if pid in results.rss_first) if results.rss_first else float("nan")
        first, _ = results.config.memory_hooks
        rows.append(("memory", "RSS per worker <= 200 MB, growth <= 5 % (1,000 -> 10,000 hooks)",
                     f"max {worst:.0f} MB; one worker: growth {growth:+.1f} % from {first} to {results.hooks_sent} hooks",
                     worst <= 200 and growth <= 5))
    return rows


def _cpu_section(results: Results) -> list[str]:
    lines = []
    header = ["| case | resources | hook CPU ms | `json.loads` ms | ratio | verdicts |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]

    def row(name: str, cost: CpuCost) -> str:
        return (f"| {name} | {cost.resources} | {_ms(cost.hook_ms)} | {cost.parse_ms:.2f} | {cost.ratio:.1f} | "
                f"{cost.verdicts} |")

    if results.cpu_typical:
        ranked = sorted(results.cpu_sandbox.items(), key=lambda item: item[1].ratio)
        lines += ["## CPU per hook against `json.loads` of the same body (median CPU time of this thread, "
                  "in-process as above)", "", *header, row("typical", results.cpu_typical)]
        if ranked:
            for label, (name, cost) in (("lowest", ranked[0]), ("median", ranked[len(ranked) // 2]),
                                        ("highest", ranked[-1])):
                lines.append(row(f"sandbox {label}: {name}", cost))
        lines += ["", f"{len(ranked)} sandbox complete-prefetch hooks; fixed per-hook CPU (intercept of hook CPU "
                  f"over parse CPU across them and the typical record): {results.fixed_cost_ms():.1f} ms.", ""]
    if results.grown:
        lines += ["## Grown records (the scenario's own lab series and regimen doses, see `records.py`; "
                  "in-process, production body limit raised)", "", *header]
        lines += [row(f"grown {cost.resources}", cost) for cost in results.grown]
        if len(results.grown) > 1:
            lines += ["", f"Log-log slope of hook CPU over resources: {loglog_slope(results.grown):.2f} "
                      "(1.00 is linear in the record)."]
        lines.append("")
    return lines


def render(results: Results) -> str:
    config = results.config
    lines = ["# cart-cds benchmark results", ""]
    if config.quick:
        lines += ["**Quick smoke run (`--quick`): tiny counts, the figures are not results.**", ""]
    lines += ["Command: `python -m sandbox.bench`" + (" --quick" if config.quick else "")
              + f"; sections: {', '.join(results.sections)}; took {results.elapsed_seconds:.0f} s.", ""]
    lines += ["## Machine", "", *_environment(), *_load_line(results.load), ""]
    lines += ["## Targets (issues 10 and 18)", "", "| what | target | measured | |", "| --- | --- | --- | --- |"]
    lines += [f"| {what} | {target} | {measured} | {_verdict(ok)} |" for what, target, measured, ok in targets(results)]
    lines.append("")
    if results.cases:
        lines += ["## Requests", "", "| case | body | resources in prefetch |", "| --- | ---: | ---: |"]
        lines += [f"| {name} | {size / 1e6:.2f} MB | {count} |" for name, (size, count) in results.cases.items()]
        lines.append("")
    if results.inprocess:
        lines += ["## In-process service time (Flask test client; client JWT checks disabled, audit to in-memory SQLite)",
                  "", "| case | calls | p50 ms | p95 ms | p99 ms | max ms | verdicts |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for name, (lat, verdicts) in results.inprocess.items():
            lines.append(f"| {name} | {lat.count} | {_ms(lat.percentile(50))} | {_ms(lat.percentile(95))} | "
                         f"{_ms(lat.percentile(99))} | {_ms(lat.samples[-1])} | {verdicts} |")
        lines.append("")
    lines += _cpu_section(results)
    if results.served:
        lines += ["## Served throughput (`cart-cds serve`: gunicorn production settings on 127.0.0.1, client JWT "
                  "checks disabled, audit to an SQLite file; load generator on the same machine)", "",
                  "| concurrency | hooks | errors | hooks/s | p50 ms | p95 ms | p99 ms | echo req/s | echo p50 ms | ratio |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for concurrency, run in results.served.items():
            echo = results.echo.get(concurrency)
            ratio = f"{run.per_second / echo.per_second:.2f}" if echo and echo.per_second else "-"
            lines.append(
                f"| {concurrency} | {run.requests} | {run.errors} | {run.per_second:.0f} | "
                f"{_ms(run.latency.percentile(50))} | {_ms(run.latency.percentile(95))} | "
                f"{_ms(run.latency.percentile(99))} | {f'{echo.per_second:.0f}' if echo else '-'} | "
                f"{_ms(echo.latency.percentile(50)) if echo else '-'} | {ratio} |")
        lines.append("")
    if results.rss_last:
        first, _ = config.memory_hooks
        lines += ["## Memory (RSS of one gunicorn worker)", "",
                  "A server of one worker (`CART_CDS_WORKERS=1`, production settings otherwise), so every hook "
                  "counted is one that worker served.", "",
                  f"| worker | after {first} hooks | after {results.hooks_sent} hooks | growth |",
                  "| --- | ---: | ---: | ---: |"]
        for n, pid in enumerate(sorted(results.rss_last), 1):
            before = results.rss_first.get(pid, float("nan"))
            after = results.rss_last[pid]
            lines.append(f"| {n} | {before:.1f} MB | {after:.1f} MB | {(after / before - 1) * 100:+.1f} % |")
        if results.rss_workers:
            shown = ", ".join(f"{rss:.1f} MB" for _, rss in sorted(results.rss_workers.items()))
            lines += ["", f"The throughput server's workers after its runs above: {shown}."]
        lines.append("")
    for title, item, note in (
        ("Fallback retrieval (no prefetch; loopback replay FHIR server delaying every query "
         f"{config.fhir_delay_seconds * 1000:.0f} ms)", results.fallback,
         f"{results.fallback_queries:.1f} FHIR queries per hook, run in parallel (one wave); "
         f"{results.fallback_connections} TCP connections over all {results.fallback[0].count + 1 if results.fallback else 0} "
         "hooks (the pooled connections are kept alive across hooks)."),
        (f"Hanging FHIR server (accepts, never answers; FHIR deadline {config.fhir_deadline_seconds} s)",
         results.hanging, "HTTP 412 is CDS Hooks' answer when no record data could be obtained at all."),
    ):
        if item:
            lat, verdicts = item
            lines += [f"## {title}", "", "| calls | p50 ms | max ms | verdicts |", "| ---: | ---: | ---: | --- |",
                      f"| {lat.count} | {_ms(lat.percentile(50))} | {_ms(lat.samples[-1])} | {verdicts} |", "", note, ""]
    if results.profile_head:
        lines += ["## Profile", "", f"cProfile of {config.profile_calls} typical calls, top functions by cumulative "
                  "time: `profile-typical.txt` beside this file.", ""]
    return "\n".join(lines)
