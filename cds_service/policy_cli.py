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
from datetime import UTC, datetime
from pathlib import Path

import click

from cds_service.policy_cases import CaseFileError, run_suite
from cds_service.settings import Settings
from policies import Policy, configured_policies, describe, in_force, in_force_periods

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
    on = as_of.date() if as_of else datetime.now(UTC).date()
    chosen = ([p for p in versions if p.version == version] if version
              else [p for p in in_force(versions, on)])
    if not chosen:
        wanted = f"version {version!r}" if version else f"version in force on {on.isoformat()}"
        raise click.ClickException(f"{policy_id}: no {wanted} (see cart-cds policy validate)")
    click.echo(describe(chosen[0], in_force_periods(policies)))


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
