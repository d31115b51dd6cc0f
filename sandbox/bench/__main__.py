"""cart-cds benchmark suite: ``python -m sandbox.bench [--quick] [--out DIR] [--only SECTIONS]``.

Runs every measurement of issues 10 and 18 on this machine, prints the results table and writes
``RESULTS.md`` (with CPU count and versions) and ``profile-typical.txt`` (cProfile of the typical case)
into ``--out`` (default: this folder). ``--quick`` is a smoke run with tiny counts (its figures are not
results). Sections: inprocess, cpu, grown, profile, served, fallback, hanging (all by default).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from sandbox.bench import inprocess, report, served
from sandbox.bench.config import FULL, QUICK, SECTIONS, Config
from sandbox.bench.fhir_fakes import delayed_replay, hanging, tripwire
from sandbox.bench.records import cases, grown_cases, no_prefetch_hook, resource_count, sandbox_complete_prefetch_hooks

# The grown records reach ~19 MB of JSON (20,000 resources), above the 10 MB production body limit.
GROWN_MAX_BODY_BYTES = 64 * 1024 * 1024

HERE = Path(__file__).resolve().parent


def run(config: Config, out: Path, sections: tuple[str, ...] = SECTIONS, echo=print) -> Path:
    """Run the chosen sections; write RESULTS.md (and the profile) into ``out``; return RESULTS.md."""
    logging.disable(logging.WARNING)  # the service's own warnings (auth disabled, ...) are not results
    try:
        return _run(config, out, sections, echo)
    finally:
        logging.disable(logging.NOTSET)


def _run(config: Config, out: Path, sections: tuple[str, ...], echo) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = report.Results(config=config, sections=sections)
    say = _recording_load(results, echo)
    with tripwire() as (no_fhir, connections):  # the in-process hooks' fhirServer: they must not call it
        bodies = cases(no_fhir)
        results.cases = {name: (len(body), resource_count(body)) for name, body in bodies.items()}
        _inprocess(config, bodies, no_fhir, results, out, say)
        results.inprocess_connections = len(connections)
    if "served" in sections:
        _served(config, cases()["typical"], results, say)
    if "fallback" in sections:
        say(f"fallback retrieval: {config.fallback_calls} calls, {config.fhir_delay_seconds * 1000:.0f} ms per query")
        client = inprocess.bench_app(fhir_deadline_seconds=config.fhir_deadline_seconds).test_client()
        with delayed_replay(config.fhir_delay_seconds) as (base, counter):
            body = no_prefetch_hook(base)
            before = counter.count
            results.fallback = inprocess.time_calls(client, body, config.fallback_calls, warmup=1)
            results.fallback_queries = (counter.count - before) / (config.fallback_calls + 1)
            results.fallback_connections = counter.connections
    if "hanging" in sections:
        say(f"hanging FHIR server: {config.hanging_calls} calls, deadline {config.fhir_deadline_seconds} s")
        client = inprocess.bench_app(fhir_deadline_seconds=config.fhir_deadline_seconds).test_client()
        with hanging() as base:
            results.hanging = inprocess.time_calls(client, no_prefetch_hook(base), config.hanging_calls, warmup=0,
                                                      accept=(200, 412))
    results.elapsed_seconds = time.monotonic() - started
    text = report.render(results)
    echo(text)
    target = out / "RESULTS.md"
    target.write_text(text, encoding="utf-8")
    return target


def _inprocess(config: Config, bodies: dict[str, bytes], no_fhir: str, results: report.Results, out: Path,
               say) -> None:
    """The sections run in this process: latency, CPU cost against ``json.loads``, grown records, profile."""
    sections = results.sections
    if not {"inprocess", "cpu", "grown", "profile"} & set(sections):
        return
    client = inprocess.bench_app().test_client()
    if "inprocess" in sections:
        for name, body in bodies.items():
            calls = config.large_calls if name == "large" else config.calls
            say(f"in-process {name}: {calls} calls")
            results.inprocess[name] = inprocess.time_calls(client, body, calls)
    if "cpu" in sections:
        say(f"CPU per hook against json.loads: typical and the sandbox hooks, {config.cpu_calls} calls each")
        results.cpu_typical = inprocess.cpu_cost(client, bodies["typical"], results.cases["typical"][1],
                                                 config.cpu_calls)
        for name, body in sandbox_complete_prefetch_hooks(no_fhir).items():
            results.cpu_sandbox[name] = inprocess.cpu_cost(client, body, resource_count(body), config.cpu_calls)
    if "grown" in sections:
        grown_client = inprocess.bench_app(max_body_bytes=GROWN_MAX_BODY_BYTES).test_client()
        for size, body in grown_cases(config.grown_sizes, no_fhir).items():
            say(f"grown record {size}: {config.grown_calls} calls")
            results.grown.append(inprocess.cpu_cost(grown_client, body, resource_count(body), config.grown_calls))
    if "profile" in sections:
        say(f"profile typical: {config.profile_calls} calls")
        profile = inprocess.profile_calls(client, bodies["typical"], config.profile_calls)
        (out / "profile-typical.txt").write_text(profile, encoding="utf-8")
        results.profile_head = profile


def _recording_load(results: report.Results, echo):
    """``echo`` that also samples the machine's 1-minute load average at each step of the run."""
    def say(line: str) -> None:
        results.load.append(os.getloadavg()[0])
        echo(line)

    return say


def _served(config: Config, body: bytes, results: report.Results, echo) -> None:
    with tempfile.TemporaryDirectory(prefix="cart-cds-bench-") as scratch:
        scratch_dir = Path(scratch)
        hook_path = inprocess.HOOK_URL
        port = served.free_port()
        env = served.server_environment(scratch_dir / "audit.db", port)
        with served.serving(served.service_command(), env, port, scratch_dir / "service.log") as process:
            echo("served: warm-up")
            served.load(port, hook_path, body, concurrency=4, requests=config.served_warmup, max_seconds=120)
            for concurrency in config.concurrencies:
                echo(f"served hooks: concurrency {concurrency}")
                results.served[concurrency] = served.load(port, hook_path, body, concurrency=concurrency,
                                                          requests=config.served_requests,
                                                          max_seconds=config.served_seconds)
            results.rss_workers = {pid: served.rss_mb(pid) for pid in served.worker_pids(process.pid)}
        _memory(config, body, results, scratch_dir, echo)
        echo_port = served.free_port()
        with served.serving(served.echo_command(echo_port), env, echo_port, scratch_dir / "echo.log"):
            for concurrency in config.concurrencies:
                echo(f"served echo: concurrency {concurrency}")
                results.echo[concurrency] = served.load(
                    echo_port, "/echo", body, concurrency=concurrency,
                    requests=config.echo_requests, max_seconds=config.served_seconds)


def _memory(config: Config, body: bytes, results: report.Results, scratch_dir: Path, echo) -> None:
    """RSS of one worker after it alone served the first and the last count of hooks: a server of one
    worker (production settings otherwise), so every hook counted is one that worker served. With
    several workers sharing the hooks, a worker that happened to serve few of the first ones would show
    its warm-up as growth."""
    port = served.free_port()
    env = {**served.server_environment(scratch_dir / "audit-memory.db", port), "CART_CDS_WORKERS": "1"}
    first, last = config.memory_hooks
    with served.serving(served.service_command(), env, port, scratch_dir / "memory.log") as process:
        echo(f"memory: one worker, {first} hooks")
        sent = served.load(port, inprocess.HOOK_URL, body, concurrency=4, requests=first, max_seconds=600).requests
        results.rss_first = {pid: served.rss_mb(pid) for pid in served.worker_pids(process.pid)}
        echo(f"memory: one worker, up to {last} hooks")
        sent += served.load(port, inprocess.HOOK_URL, body, concurrency=4, requests=last - sent,
                            max_seconds=900).requests
        results.hooks_sent = sent
        results.rss_last = {pid: served.rss_mb(pid) for pid in served.worker_pids(process.pid)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny counts (figures are not results)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for RESULTS.md and the profile")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))} (choose from {', '.join(SECTIONS)})")
    path = run(QUICK if args.quick else FULL, args.out, sections, echo=lambda line: print(line, flush=True))
    print(f"written: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
