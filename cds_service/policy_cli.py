"""``cart-cds policy``: the payer's policy files as data, checked and tried before they are deployed.

    cart-cds policy validate DIR [--value-sets DIR]           every file valid? which version when?
    cart-cds policy show ID [--as-of DATE] [--version V]      the criteria tree a pharmacist reads
    cart-cds policy test CASES [--hooks-dir DIR] [--fhir-server URL] [--as-of DATE]
                                                              decisions of recorded hooks vs expected

``show`` and ``test`` use the policies the service would use: ``--policy-dir``/``--value-sets`` when
given, else ``CART_CDS_POLICY_DIR``/``CART_CDS_VALUE_SET_DIR``, else the shipped ones. An invalid file
is reported as the service reports it at start-up (file and JSON pointer) with exit status 1; a failed
test case exits with status 1 too.
"""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import click

from cds_service.policy_cases import CaseFileError, run_suite
from cds_service.settings import Settings
from policies.checks import get_check
from policies.loader import configured_policies
from policies.model import Criterion, Policy, in_force

_DIRECTORY = click.Path(exists=True, file_okay=False, path_type=Path)
_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _settings(policy_dir: Path | None, value_set_dir: Path | None) -> Settings:
    """The ``CART_CDS_*`` settings with the directories given on the command line put in."""
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return dataclasses.replace(settings, policy_dir=policy_dir or settings.policy_dir,
                               value_set_dir=value_set_dir or settings.value_set_dir)


def _load(settings: Settings) -> tuple[Policy, ...]:
    try:
        return configured_policies(settings.policy_dir, settings.value_set_dir)
    except ValueError as exc:  # PolicyLoadError: one line per file problem
        raise click.ClickException(str(exc)) from None


def _directory_options(command):
    command = click.option("--value-sets", "value_set_dir", type=_DIRECTORY,
                           help="Value-set directory [default: CART_CDS_VALUE_SET_DIR, else shipped only].")(command)
    return click.option("--policy-dir", type=_DIRECTORY,
                        help="Policy directory [default: CART_CDS_POLICY_DIR, else the shipped policies].")(command)


@click.group("policy")
def policy() -> None:
    """Policy files as data: validate a directory, show a policy's criteria, run policy test cases."""


# --------------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------------


def in_force_periods(policies: tuple[Policy, ...]) -> list[tuple[Policy, date, date | None]]:
    """(version, first day, last day or None) of every loaded version, by policy id then date: a
    version's period ends at its own ``until`` or the day before a later version starts."""
    out = []
    ordered = sorted(policies, key=lambda p: (p.id, p.in_force_from))
    for policy, following in zip(ordered, [*ordered[1:], None]):
        ends = [d for d in (policy.in_force_until,
                            following.in_force_from - timedelta(days=1) if following and following.id == policy.id else None)
                if d is not None]
        out.append((policy, policy.in_force_from, min(ends) if ends else None))
    return out


@policy.command("validate")
@click.argument("directory", type=_DIRECTORY)
@click.option("--value-sets", "value_set_dir", type=_DIRECTORY, help="Value-set directory the policies may name.")
def validate_command(directory: Path, value_set_dir: Path | None) -> None:
    """Check every policy file in DIRECTORY as the service does at start-up; list the versions."""
    policies = _load(Settings(policy_dir=directory, value_set_dir=value_set_dir))
    for version, first, last in in_force_periods(policies):
        until = last.isoformat() if last else "superseded"
        click.echo(f"{version.id:<14} version {version.version:<10} in force {first.isoformat()} .. {until:<10}  "
                   f"{version.source}")
    click.echo(f"{len(policies)} policy file(s) valid")


# --------------------------------------------------------------------------------------------------
# show
# --------------------------------------------------------------------------------------------------

_LOGIC = {"all": "all of", "any": "any of"}
_INDENT = "    "


def _check_summary(name: str) -> str:
    """The first sentence of the check's docstring: what it looks for in the record."""
    doc = (get_check(name).function.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split()).split(". ")[0].rstrip(".") if doc else ""


def _param_text(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def criterion_lines(node: Criterion, depth: int = 0) -> list[str]:
    """One criterion and its children, as a pharmacist reads them: the policy's words, how the children
    combine, the check the service runs with its parameters, and what is asked for when not shown."""
    pad = _INDENT * depth
    combine = f"  [{_LOGIC.get(node.logic, f'{node.n} of')}]" if node.logic else ""
    lines = textwrap.wrap(f"{node.id}  {node.text}{combine}", width=110, initial_indent=pad,
                          subsequent_indent=pad + _INDENT)
    detail = pad + _INDENT
    if node.check:
        summary = _check_summary(node.check)
        lines.append(f"{detail}check: {node.check}" + (f" -- {summary}" if summary else ""))
        lines += [f"{detail}  {key} = {_param_text(value)}" for key, value in node.params.items()]
    if node.documentation:
        lines += textwrap.wrap(f"when not shown, ask for: {node.documentation}", width=110,
                               initial_indent=detail, subsequent_indent=detail + _INDENT)
    for child in node.children:
        lines += criterion_lines(child, depth + 1)
    return lines


def policy_text(policy: Policy, periods: list[tuple[Policy, date, date | None]]) -> str:
    versions = [f"{p.version} ({first} .. {last or 'superseded'})" for p, first, last in periods if p.id == policy.id]
    lines = [
        f"{policy.id}: {policy.title}",
        f"Version {policy.version}, in force from {policy.in_force_from.isoformat()}"
        + (f" until {policy.in_force_until.isoformat()}" if policy.in_force_until else "") + f" ({policy.source})",
        f"All versions loaded: {'; '.join(versions)}",
        f"Product: {policy.product.display}; lines of business: {', '.join(policy.lines_of_business)}",
        "",
        "Required criteria (every one must be met):",
    ]
    for root in policy.required:
        lines += criterion_lines(root, 1)
    lines += ["", "Tocilizumab allowance:", *criterion_lines(policy.tocilizumab, 1)]
    terms = policy.approval
    lines += ["", f"Approval: {terms.duration_months} months, {terms.doses} dose(s); PDAC review "
                  f"{'required' if terms.pdac_review_required else 'not required'}"]
    return "\n".join(lines)


@policy.command("show")
@click.argument("policy_id")
@_directory_options
@click.option("--as-of", type=_DATE, metavar="YYYY-MM-DD", help="Show the version in force on this date [default: today].")
@click.option("--version", "version", help="Show this version instead of the one in force.")
def show_command(policy_id: str, policy_dir: Path | None, value_set_dir: Path | None,
                 as_of: datetime | None, version: str | None) -> None:
    """Print POLICY_ID's criteria tree with its checks and parameters."""
    policies = _load(_settings(policy_dir, value_set_dir))
    versions = [p for p in policies if p.id == policy_id]
    if not versions:
        raise click.ClickException(f"no policy {policy_id!r} (loaded: {', '.join(sorted({p.id for p in policies}))})")
    on = as_of.date() if as_of else datetime.now(timezone.utc).date()
    chosen = ([p for p in versions if p.version == version] if version
              else [p for p in in_force(versions, on)])
    if not chosen:
        wanted = f"version {version!r}" if version else f"version in force on {on.isoformat()}"
        raise click.ClickException(f"{policy_id}: no {wanted} (see cart-cds policy validate)")
    click.echo(policy_text(chosen[0], in_force_periods(policies)))


# --------------------------------------------------------------------------------------------------
# test
# --------------------------------------------------------------------------------------------------


@policy.command("test")
@click.argument("cases_dir", metavar="CASES", type=_DIRECTORY)
@_directory_options
@click.option("--hooks-dir", type=_DIRECTORY, help="Where the cases' hook files are [default: CASES].")
@click.option("--fhir-server", metavar="URL", help="Answer hooks without prefetch from this FHIR server.")
def test_command(cases_dir: Path, policy_dir: Path | None, value_set_dir: Path | None,
                 hooks_dir: Path | None, fhir_server: str | None) -> None:
    """Run every policy test case in CASES (JSON: hooks + expected verdict and criteria) and compare."""
    settings = _settings(policy_dir, value_set_dir)
    _load(settings)  # a bad policy directory is reported as such, not as failing cases
    try:
        results = run_suite(cases_dir, settings, hooks_dir, fhir_server)
    except CaseFileError as exc:
        raise click.ClickException(str(exc)) from None
    for result in results:
        mark = "ok  " if result.passed else "FAIL"
        click.echo(f"{mark} {result.case:<48} {result.hook:<60} {result.verdict:<25} {' '.join(result.deciding[:4])}")
        for problem in result.problems:
            click.echo(f"       {problem}")
    failed = sum(not r.passed for r in results)
    click.echo(f"{len(results) - failed} of {len(results)} hooks as expected")
    if failed:
        raise SystemExit(1)
