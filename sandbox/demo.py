"""``cart-cds demo``: the whole service working on one machine, with no external service.

The demo is what an EHR integration does, end to end, on loopback:

1. a key pair is generated for the run and a trusted-clients file that trusts it is written to a
   temporary directory, so client JWT authentication stays ON as in production;
2. the sandbox replay FHIR server (test tooling) and the service start on free 127.0.0.1 ports; the
   service's settings are built here, explicitly, so ``CART_CDS_*`` variables of the user's shell never
   change what the demo shows (its audit database lives in the temporary directory);
3. every sandbox hook (with prefetch, without, partial and paginated) is sent over real HTTP with a
   fresh signed JWT (unique ``jti``, ``aud`` = the service URL), its ``fhirServer`` moved onto the
   replay server's real port;
4. each answer is compared with the scenario's expected decision (``sandbox.expectations``) and a table
   is printed: scenario, hook variant, product, expected and actual verdict, deciding criteria, response
   time. The exit status is 1 when any hook mismatched or failed.

Servers are stopped and the temporary directory removed on every way out, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import difflib
import html
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TextIO

import click
import orjson
import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from cds_service.app import create_app
from cds_service.auth.trusted_clients import origin_of
from cds_service.settings import Settings
from sandbox import catalog, recorded, replay_server
from sandbox.dtr_form.round_trip import run as dtr_round_trip
from sandbox.ehr_signer import EhrSigner
from sandbox.expectations import (
    HOOK_VARIANTS,
    deciding_criteria,
    decisions,
    expected_for,
    mismatches,
    scenario_of_hook,
    split_hook_name,
)

HOOKS_DIR = recorded.SANDBOX / "hooks"
RECORDED_BASE = "http://127.0.0.1:8090/fhir"  # the fhirServer the committed hook files name
SERVICE_PATH = "/cds-services/car-t-coverage"
SCENARIO_DATE = date(2026, 11, 24)  # the date the scenarios and their expected decisions are written for
DEMO_ISSUER = "https://ehr.cart-cds-demo.invalid"
REQUEST_TIMEOUT = (5, 60)  # connect, read (s): the service itself answers within its hook budget


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What one hook call returned: HTTP status and JSON body, or the transport error that prevented it."""

    status: int | None
    body: dict | None
    elapsed_ms: float
    error: str | None = None


@dataclass(frozen=True)
class OrderRow:
    """One compared order of one hook: the CAR-T order, or a co-signed tocilizumab order."""

    label: str
    expected: str
    actual: str
    deciding: tuple[str, ...]


@dataclass(frozen=True)
class HookResult:
    hook: str  # file stem, e.g. abecma-meets-all-criteria-no-prefetch
    scenario: str
    product: str
    rows: tuple[OrderRow, ...]
    elapsed_ms: float
    problems: tuple[str, ...]
    cards: tuple[dict, ...] = ()

    @property
    def variant(self) -> str:
        return self.hook[len(self.scenario) + 1:]

    @property
    def matched(self) -> bool:
        return not self.problems


def judge(hook_file: Path, reply: Reply, expected: dict) -> HookResult:
    """Compare one reply with the scenario's expected decision."""
    scenario = scenario_of_hook(hook_file)
    body = reply.body if reply.error is None and reply.status == 200 else None
    if reply.error is not None:
        problems = [reply.error]
    elif body is None:
        problems = [f"HTTP {reply.status} from the service"]
    else:
        problems = mismatches(expected, body)
    found = decisions(body or {})
    wanted = [(expected["product"], expected)]
    if expected.get("tocilizumab"):
        wanted.append(("+ tocilizumab", expected["tocilizumab"]))
    rows = []
    for label, want in wanted:
        decision = found.get(want["order"])
        actual = decision.get("verdict", "?") if decision else ("no decision" if body is not None else "ERROR")
        rows.append(OrderRow(label, want["verdict"], actual, deciding_leaves(decision or {})))
    return HookResult(hook_file.stem, scenario, expected["product"], tuple(rows), reply.elapsed_ms,
                      tuple(problems), tuple((body or {}).get("cards", ())))


def deciding_leaves(decision: dict) -> tuple[str, ...]:
    """The criteria behind a verdict other than meets-policy, without the groups that only contain them
    (``I.A.7`` rather than ``I.A, I.A.7``)."""
    if decision.get("verdict") == "meets-policy":
        return ()
    ids = deciding_criteria(decision)
    return tuple(i for i in ids if not any(other.startswith(i + ".") for other in ids))


def run_hooks(hook_files: list[Path], send: Callable[[Path], Reply], progress: Progress,
              expected_of: Callable[[str], dict] = expected_for) -> list[HookResult]:
    results = []
    for hook_file in hook_files:
        progress.step(hook_file.stem)
        results.append(judge(hook_file, send(hook_file), expected_of(scenario_of_hook(hook_file))))
    progress.done()
    return results


# --- choosing hooks ------------------------------------------------------------------------------


def _variant_rank(hook_file: Path) -> tuple[str, int]:
    scenario, variant = split_hook_name(hook_file)
    return scenario, HOOK_VARIANTS.index(variant)


def hook_files(scenario: str | None = None, hooks_dir: Path = HOOKS_DIR) -> list[Path]:
    """Every sandbox hook, or one scenario's, grouped by scenario (prefetch first)."""
    files = sorted(hooks_dir.glob("*.json"), key=_variant_rank)
    if scenario is None:
        return files
    chosen = [f for f in files if scenario_of_hook(f) == scenario]
    if not chosen:
        names = sorted({scenario_of_hook(f) for f in files})
        close = difflib.get_close_matches(scenario, names, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else f" Known scenarios: {', '.join(names)}"
        raise click.BadParameter(f"no sandbox scenario named {scenario!r}.{hint}", param_hint="--scenario")
    return chosen


# --- progress and output -------------------------------------------------------------------------


class Progress:
    """A counter on stderr: one rewritten line on a terminal, a plain line every tenth hook otherwise."""

    def __init__(self, total: int, stream: TextIO, interactive: bool) -> None:
        self.total, self.stream, self.interactive, self.count = total, stream, interactive, 0

    def step(self, label: str) -> None:
        self.count += 1
        width = len(str(self.total))
        if self.interactive:
            self.stream.write(f"\r\033[K[{self.count:>{width}}/{self.total}] {label}")
        elif self.count == 1 or self.count % 10 == 0:
            self.stream.write(f"demo: sending hook {self.count}/{self.total}\n")
        self.stream.flush()

    def done(self) -> None:
        if self.interactive:
            self.stream.write("\r\033[K")
        else:
            self.stream.write(f"demo: {self.count}/{self.total} hooks sent\n")
        self.stream.flush()


def _criteria_cell(ids: tuple[str, ...], limit: int = 4) -> str:
    if not ids:
        return "-"
    shown = ", ".join(ids[:limit])
    return shown + (f" +{len(ids) - limit} more" if len(ids) > limit else "")


TABLE_HEADER = ("scenario", "hook", "product", "expected", "actual", "deciding criteria", "ms", "result")


def format_table(results: Iterable[HookResult]) -> str:
    """The results as an aligned plain-text table, one line per compared order."""
    lines = [TABLE_HEADER]
    for result in results:
        for index, row in enumerate(result.rows):
            first = index == 0
            lines.append((
                result.scenario if first else "",
                result.variant if first else "",
                row.label,
                row.expected,
                row.actual,
                _criteria_cell(row.deciding),
                f"{result.elapsed_ms:.0f}" if first else "",
                ("ok" if result.matched else "MISMATCH") if first else "",
            ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEADER))]
    right = {TABLE_HEADER.index("ms")}
    rendered = []
    for line in lines:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))]
        rendered.append("  ".join(cells).rstrip())
    rendered.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(rendered)


def format_problems(results: Iterable[HookResult]) -> str:
    lines = []
    for result in results:
        lines += [f"{result.hook}: {problem}" for problem in result.problems]
    return "\n".join(lines)


_MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!:|<>~])")


def _plain(markdown: str) -> str:
    """Card markdown made readable on a terminal: escapes and HTML entities undone, emphasis kept."""
    return html.unescape(_MARKDOWN_ESCAPE.sub(r"\1", markdown))


def format_cards(results: Iterable[HookResult]) -> str:
    """Each distinct set of cards once, naming the hook variants that returned it."""
    groups: dict[bytes, tuple[list[str], tuple[dict, ...]]] = {}
    for result in results:
        key = orjson.dumps([(c.get("indicator"), c.get("summary"), c.get("detail")) for c in result.cards])
        groups.setdefault(key, ([], result.cards))[0].append(result.variant)
    blocks = []
    for variants, cards in groups.values():
        lines = [f"=== cards returned with {', '.join(variants)} ==="]
        if not cards:
            lines.append("(no cards)")
        for card in cards:
            lines += ["", f"[{card.get('indicator', '?')}] {card.get('summary', '')}", "", _plain(card.get("detail", ""))]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def summary_line(results: list[HookResult], seconds: float) -> str:
    matched = sum(r.matched for r in results)
    scenarios = {r.scenario for r in results}
    ok_scenarios = scenarios - {r.scenario for r in results if not r.matched}
    return (f"{matched} matched / {len(results)} total hooks ({len(ok_scenarios)}/{len(scenarios)} scenarios); "
            f"total run time {seconds:.1f} s")


# --- the servers ---------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """No access log: the demo prints its own table."""

    def log_request(self, *args, **kwargs) -> None:
        pass


@contextlib.contextmanager
def _loopback_without_proxy() -> Iterator[None]:
    """Loopback calls must not go through an HTTP proxy set in the user's environment."""
    saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    for name, value in saved.items():
        os.environ[name] = ",".join(filter(None, [value, "127.0.0.1", "localhost"]))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def demo_settings(workdir: Path, service_url: str, trusted_clients: Path) -> Settings:
    """The service's settings for the demo, built explicitly (never from ``CART_CDS_*``)."""
    return Settings(
        trusted_clients_file=trusted_clients,
        public_base_url=service_url,
        allow_loopback_fhir=True,
        fhir_open_hosts=("127.0.0.1",),  # the replay server: the sandbox hooks send no fhirAuthorization
        payer_identifiers=(catalog.SANDBOX_PAYER_IDENTIFIER,),
        payer_name=catalog.SANDBOX_PAYER_NAME,
        database_url=f"sqlite:///{workdir / 'audit.db'}",
        log_level="ERROR",
    )


def _not_started(environ, start_response):  # placeholder until the app, which needs the bound port, exists
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


@contextlib.contextmanager
def running_demo(as_of: date) -> Iterator[Callable[[Path], Reply]]:
    """Start the replay FHIR server and the service on loopback; yield ``send(hook_file) -> Reply``."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cart-cds-demo-")))
        stack.enter_context(_loopback_without_proxy())
        replay = replay_server.make_server("127.0.0.1", 0)
        stack.enter_context(replay_server.serving(replay))
        replay_base = replay_server.base_url(replay)
        signer = EhrSigner.generate(DEMO_ISSUER, alg="ES384")
        trusted = signer.write_trusted_clients(workdir / "trusted-clients.yaml", fhir_servers=[origin_of(replay_base)])

        server = make_server("127.0.0.1", 0, _not_started, threaded=True, request_handler=_QuietHandler)
        service_url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            server.app = create_app(demo_settings(workdir, service_url, trusted), as_of=as_of)
        except BaseException:
            server.server_close()
            raise
        stack.enter_context(replay_server.serving(server))

        session = stack.enter_context(requests.Session())
        session.trust_env = False  # no proxy, no .netrc credentials for a loopback call
        hook_url = service_url + SERVICE_PATH

        def send(hook_file: Path) -> Reply:
            hook = recorded.rebase(orjson.loads(hook_file.read_bytes()), RECORDED_BASE, replay_base)
            headers = {"Content-Type": "application/json", **signer.authorization_header(hook_url)}
            started = time.perf_counter()
            try:
                response = session.post(hook_url, data=orjson.dumps(hook), headers=headers, timeout=REQUEST_TIMEOUT)
            except requests.RequestException as exc:
                return Reply(None, None, _ms_since(started), f"request failed: {type(exc).__name__}")
            elapsed = _ms_since(started)
            try:
                body = response.json() if response.status_code == 200 else None
            except ValueError:
                return Reply(response.status_code, None, elapsed, "the service answered 200 with a body that is not JSON")
            return Reply(response.status_code, body, elapsed)

        yield send


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# --- the command ---------------------------------------------------------------------------------


def report(results: list[HookResult], seconds: float, show_cards: bool, out: TextIO) -> int:
    """Print the table (and cards), the problems and the summary; return the exit status."""
    print(format_table(results), file=out)
    if show_cards:
        print("\n" + format_cards(results), file=out)
    problems = format_problems(results)
    if problems:
        print("\nmismatches and errors:\n" + problems, file=out)
    print("\n" + summary_line(results, seconds), file=out)
    return 0 if all(r.matched for r in results) else 1


def _serve_until_interrupted(page: str) -> None:
    click.echo(f"\nthe form, prefilled, in LHC-Forms: {page}  (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


@click.command("demo")
@click.pass_context
@click.option("--scenario", metavar="NAME", help="Run one scenario's hooks and print its cards.")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=SCENARIO_DATE.isoformat(), show_default=True,
              help="Decision date; the expected decisions are written for the default.")
@click.option("--dtr", is_flag=True, help="Instead: one documentation-incomplete order through DTR (package, "
                                          "prefilled form, completed answers, re-evaluated verdict).")
@click.option("--serve-form", is_flag=True, help="With --dtr: then serve the LHC-Forms page until Ctrl-C.")
def demo(ctx: click.Context, scenario: str | None, as_of, dtr: bool, serve_form: bool) -> None:
    """Run every sandbox hook through the service on loopback and compare with the expected decisions.

    Starts the replay FHIR server and the service (client JWT authentication on, with a key pair made for
    the run) on free 127.0.0.1 ports, sends each hook over HTTP, prints a table and a summary. Exit status
    1 when any hook does not match its scenario's expected decision.
    """
    if dtr:
        ctx.exit(dtr_round_trip(as_of.date(), sys.stdout, _serve_until_interrupted if serve_form else None))
    files = hook_files(scenario)
    started = time.perf_counter()
    progress = Progress(len(files), sys.stderr, sys.stderr.isatty())
    try:
        with running_demo(as_of.date()) as send:
            results = run_hooks(files, send, progress)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: servers stopped, temporary files removed", err=True)
        ctx.exit(130)
    ctx.exit(report(results, time.perf_counter() - started, scenario is not None, sys.stdout))
