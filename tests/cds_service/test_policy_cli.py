"""``cart-cds policy validate|show|test`` and policies managed as data outside the package.

A payer keeps its policies in its own directory (``CART_CDS_POLICY_DIR``), revises them every year and
mid-year, and wants to see what a change does before deploying it. These tests edit real policy files
the way an analyst would (a threshold, a new version with its first day in force) and check what the
commands and the service then say.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from cds_service import create_app
from cds_service.cli import main
from tests.cds_service.conftest import HOOK_URL, protocol_settings
from tests.scenarios.test_sandbox_scenarios import _replay

REPO = Path(__file__).parents[2]
FILES = REPO / "policies" / "files"
SANDBOX = REPO / "sandbox"
P481 = "cp-phar-481-idecabtagene-vicleucel.yaml"
LOOPBACK = {"CART_CDS_ALLOW_LOOPBACK_FHIR": "true", "CART_CDS_AUTH_DISABLED": "true"}


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env={**LOOPBACK, **(env or {})})


def policy_dir(tmp_path: Path, *edits: tuple[str, str, str]) -> Path:
    """A copy of the shipped policies; each edit (file, old text, new text) applied like an analyst's."""
    folder = tmp_path / "policies"
    shutil.copytree(FILES, folder)
    for name, old, new in edits:
        text = (folder / name).read_text(encoding="utf-8")
        assert old in text
        (folder / name).write_text(text.replace(old, new), encoding="utf-8")
    return folder


def mid_year_481(folder: Path) -> None:
    """A mid-year revision of 481 next to the 2026 annual one: serum M-protein >= 1.0 g/dL from 2026-11-25."""
    text = (FILES / P481).read_text(encoding="utf-8")
    for old, new in (('version: "2026-05"', 'version: "2026-11"'), ("from: 2026-03-26", "from: 2026-11-25"),
                     ("params: {min_g_dl: 0.5, within_days: 30}", "params: {min_g_dl: 1.0, within_days: 30}")):
        assert old in text
        text = text.replace(old, new)
    (folder / "cp-phar-481-2027.yaml").write_text(text, encoding="utf-8")


def cases(tmp_path: Path, *scenarios: str, **changes) -> Path:
    """A case directory holding the sandbox's expected files for ``scenarios`` (their prefetch hook only)."""
    folder = tmp_path / "cases"
    folder.mkdir(exist_ok=True)
    for scenario in scenarios:
        case = json.loads((SANDBOX / "expected" / f"{scenario}.json").read_text(encoding="utf-8"))
        case.update(hooks=[f"{scenario}-prefetch.json"], **changes)
        (folder / f"{scenario}.json").write_text(json.dumps(case), encoding="utf-8")
    return folder


def test_validate_lists_each_version_with_the_days_it_is_in_force(tmp_path):
    folder = policy_dir(tmp_path)
    mid_year_481(folder)

    result = run("policy", "validate", str(folder))

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("CP.PHAR.481" in line and "2026-05" in line and "2026-03-26 .. 2026-11-24" in line for line in lines), lines
    assert any("CP.PHAR.481" in line and "2026-11" in line and "2026-11-25 .. superseded" in line for line in lines), lines
    assert lines[-1] == "3 policy file(s) valid"


def test_validate_names_the_file_and_pointer_of_every_problem(tmp_path):
    folder = policy_dir(tmp_path, (P481, "params: {min_g_dl: 0.5, within_days: 30}", "params: {min_g_dl: '0.5', within_days: 30}"),
                       (P481, "from: 2026-03-26", "from: 2026-02-30"))

    result = run("policy", "validate", str(folder))

    assert result.exit_code == 1
    assert f"{P481}: /policy/in_force/from: '2026-02-30' is not a calendar date" in result.output
    assert f"{P481}: /initial_approval/children/3/children/0/children/0/params/min_g_dl: '0.5' is not of type 'number'" in result.output


def test_service_does_not_start_on_a_bad_policy_directory(tmp_path):
    folder = policy_dir(tmp_path, (P481, "check: age_at_least", "check: age_over"))

    result = run("discovery", env={"CART_CDS_POLICY_DIR": str(folder)})  # builds nothing: settings only
    assert result.exit_code == 0
    with pytest.raises(ValueError, match=rf"{P481}: /initial_approval/children/2/check: unknown check 'age_over'"):
        create_app(protocol_settings(policy_dir=folder))


def test_show_prints_the_criteria_tree_with_checks_and_parameters(tmp_path):
    folder = policy_dir(tmp_path)
    mid_year_481(folder)

    now = run("policy", "show", "CP.PHAR.481", "--policy-dir", str(folder), "--as-of", "2026-11-24")
    later = run("policy", "show", "CP.PHAR.481", "--policy-dir", str(folder), "--as-of", "2026-11-25")

    assert now.exit_code == 0 and later.exit_code == 0, now.output + later.output
    assert "Version 2026-05, in force from 2026-03-26" in now.output
    assert "Version 2026-11, in force from 2026-11-25" in later.output
    for text in (now.output, later.output):
        assert "I.A.4.a.i  Serum M-protein" in text and "check: serum_m_protein_at_least" in text
        assert "III.B  Known CNS involvement" in text and "I.A.approval.tocilizumab" in text
    assert "min_g_dl = 0.5" in now.output and "min_g_dl = 1.0" in later.output
    assert "when not shown, ask for: Member's date of birth" in now.output
    assert run("policy", "show", "CP.PHAR.999").exit_code == 1


def test_the_sandbox_expectations_are_a_passing_policy_suite(http_mock):
    """The first suite: every sandbox hook (no-prefetch ones answered by the recorded FHIR responses)."""
    from sandbox.recorded import RECORDED, load_dir
    from tests.scenarios.test_sandbox_scenarios import REPLAY_BASE

    unplanned: list[str] = []
    _replay(http_mock, load_dir(RECORDED / "replay", REPLAY_BASE), unplanned)

    result = run("policy", "test", str(SANDBOX / "expected"), "--hooks-dir", str(SANDBOX / "hooks"),
                 "--fhir-server", REPLAY_BASE)

    hooks = len(list((SANDBOX / "hooks").glob("*.json")))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"{hooks} of {hooks} hooks as expected"
    assert unplanned == []


def test_an_edited_threshold_shows_which_decisions_change(tmp_path):
    """An analyst raises 481's serum M-protein threshold to 1.0 g/dL: the 0.7 g/dL case stops meeting it."""
    folder = policy_dir(tmp_path, (P481, "params: {min_g_dl: 0.5, within_days: 30}", "params: {min_g_dl: 1.0, within_days: 30}"))
    suite = cases(tmp_path, "abecma-serum-m-protein-0.7", "abecma-meets-all-criteria")
    hooks = ["--hooks-dir", str(SANDBOX / "hooks")]

    assert run("policy", "test", str(suite), *hooks).exit_code == 0
    result = run("policy", "test", str(suite), "--policy-dir", str(folder), *hooks)

    assert result.exit_code == 1
    assert "CAR-T order: I.A.4.a.i is 'not-met', expected 'met'" in result.output
    assert "ok   abecma-meets-all-criteria.json" in result.output
    assert result.output.splitlines()[-1] == "1 of 2 hooks as expected"


def test_a_malformed_case_file_is_named(tmp_path):
    suite = cases(tmp_path, "abecma-meets-all-criteria")
    (suite / "broken.json").write_text(json.dumps({"asOf": "2026-11-24", "hooks": ["x.json"], "order": "MedicationRequest/x",
                                                   "verdict": "approved", "criteria": {}}))
    result = run("policy", "test", str(suite))
    assert result.exit_code == 1
    assert "broken.json: /verdict: 'approved' is not one of" in result.output


@pytest.mark.parametrize("as_of, version, status", [("2026-11-24", "2026-05", "met"), ("2026-11-25", "2026-11", "not-met")])
def test_the_version_in_force_on_the_order_date_decides_and_is_named(tmp_path, as_of, version, status):
    """Two versions of 481 in one directory: the order's date picks the version; the card, its decision
    extension and the audit trail name it."""
    folder = policy_dir(tmp_path)
    mid_year_481(folder)
    hook = json.loads((SANDBOX / "hooks" / "abecma-serum-m-protein-0.7-prefetch.json").read_text(encoding="utf-8"))
    app = create_app(protocol_settings(policy_dir=folder, allow_loopback_fhir=True), as_of=date.fromisoformat(as_of))

    response = app.test_client().post(HOOK_URL, json=hook)

    assert response.status_code == 200
    [card] = response.get_json()["cards"]
    decision = card["extension"]["cart-cds.decision"]
    assert (decision["policy"], decision["policyVersion"]) == ("CP.PHAR.481", version)
    assert {c["id"]: c["status"] for c in decision["criteria"]}["I.A.4.a.i"] == status
    assert f"version {version}" in card["detail"]
    [row] = app.extensions["cart_cds.audit"].show(hook["hookInstance"])
    assert row["policies"] == [{"policy": "CP.PHAR.481", "version": version}]


def test_no_version_in_force_means_no_guidance(tmp_path):
    """Before the first version's day (or after a withdrawn one's last day) the policy judges nothing."""
    folder = policy_dir(tmp_path, (P481, "from: 2026-03-26", "from: 2026-03-26\n    until: 2026-06-30"))
    hook = json.loads((SANDBOX / "hooks" / "abecma-meets-all-criteria-prefetch.json").read_text(encoding="utf-8"))
    for as_of in (date(2026, 3, 25), date(2026, 7, 1)):
        app = create_app(protocol_settings(policy_dir=folder, allow_loopback_fhir=True), as_of=as_of)
        assert app.test_client().post(HOOK_URL, json=hook).get_json() == {"cards": []}
