"""Policy files: both shipped files load and encode the seeds' differences; broken files fail with the
file name and the JSON pointer of the offending node."""

from __future__ import annotations

import re
from dataclasses import replace as with_
from datetime import date
from pathlib import Path

import pytest
import yaml

from policies.loader import PolicyLoadError, load_policies, parse_policy, shipped_policies
from policies.model import in_force

FILES = Path(__file__).resolve().parents[2] / "policies" / "files"
P481 = "cp-phar-481-idecabtagene-vicleucel.yaml"
P769 = "cp-phar-769-anitocabtagene-autoleucel.yaml"


def by_id(policy):
    return {c.id: c for c in policy.criteria()}


@pytest.fixture(scope="module")
def policies():
    loaded = {p.id: p for p in shipped_policies()}
    return loaded["CP.PHAR.481"], loaded["CP.PHAR.769"]


def test_both_files_load_with_every_numbered_item(policies):
    expected = {
        "I.A", "I.A.1", "I.A.2", "I.A.3", "I.A.4", "I.A.4.a", "I.A.4.a.i", "I.A.4.a.ii", "I.A.4.a.iii", "I.A.4.b",
        "I.A.5", "I.A.5.a", "I.A.5.b", "I.A.5.c", "I.A.6", "I.A.7", "I.A.8", "I.A.9", "I.A.10", "II.A.1",
        "III.A", "III.B", "I.A.approval.tocilizumab",
    }
    for policy in policies:
        assert set(by_id(policy)) == expected
        assert policy.other_diagnoses.id == "I.B" and policy.continued_other_diagnoses.id == "II.B"
        assert policy.approval.duration_months == 3 and policy.approval.doses == 1
        assert policy.approval.tocilizumab_max_doses == 4 and policy.approval.tocilizumab_max_mg_per_dose == 800
        assert policy.approval.pdac_review_required


def test_thresholds_and_wording_differ_where_the_seeds_differ(policies):
    p481, p769 = (by_id(p) for p in policies)
    assert p481["I.A.4.a.i"].params["min_g_dl"] == 0.5 and p769["I.A.4.a.i"].params["min_g_dl"] == 1.0
    assert p481["I.A.5"].params == {"minimum": 2, "consolidation_in_line": False}
    assert p769["I.A.5"].params == {"minimum": 3, "consolidation_in_line": True}
    assert all(p769[i].params["consolidation_in_line"] for i in ("I.A.5.a", "I.A.5.b", "I.A.5.c"))
    assert p481["I.A.10"].params["max_millions"] == 510 and p769["I.A.10"].params["max_millions"] == 115
    assert "known central nervous system (CNS) involvement with myeloma" in p481["I.A.6"].text
    assert "active central nervous system (CNS) involvement by malignancy" in p769["I.A.6"].text
    assert "cns-malignancy-involvement" in p481["I.A.6"].params["value_sets"]
    assert p769["I.A.6"].params["active_value_sets"] == ["cns-malignancy-involvement"]
    assert "meningeal" in p769["III.B"].text and "meningeal-involvement" in p769["III.B"].params["active_value_sets"]
    assert "Abecma" in p769["I.A.8"].params["examples"] and "Abecma" not in p481["I.A.8"].params["examples"]
    for window in ("I.A.4.a.i", "I.A.4.a.ii", "I.A.4.a.iii"):
        assert p481[window].params["within_days"] == p769[window].params["within_days"] == 30
    assert p481["I.A.4.b"].params["within_days"] == p769["I.A.4.b"].params["within_days"] == 60


def test_identity_product_lines_of_business_and_referrals(policies):
    p481, p769 = policies
    assert p481.lines_of_business == ("commercial", "marketplace", "ichra", "medicaid")
    assert p769.lines_of_business == ("commercial", "marketplace", "medicaid")
    assert p481.approval.hcpcs == ("Q2055",) and p769.approval.hcpcs == ()
    assert ("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "Q2055") in {
        (c.system, c.code) for c in p481.product.codes
    }
    assert p769.product.codes == () and {"anito-cel", "kite-772", "anitocabtagene autoleucel"} <= set(p769.product.names)
    rules = {r.criterion: dict(r.by_line_of_business) for r in p481.other_diagnoses.rules}
    assert rules["I.B.1.a"] == {"commercial": "CP.CPA.190", "marketplace": "HIM.PA.33", "ichra": "HIM.PA.33",
                                "medicaid": "CP.PMN.255"}
    assert rules["I.B.1.b"]["marketplace"] == "HIM.PA.103" and rules["I.B.1.b"]["medicaid"] == "CP.PMN.16"
    assert rules["I.B.2"] == {"commercial": "CP.CPA.09", "marketplace": "HIM.PA.154", "ichra": "HIM.PA.154",
                              "medicaid": "CP.PMN.53"}
    assert all("ichra" not in r.by_line_of_business for r in p769.other_diagnoses.rules)
    assert p769.continued_other_diagnoses.rules == p769.other_diagnoses.rules


def test_769_file_notes_the_per_kg_dosing_table_and_the_absolute_limit_used():
    dosing = yaml.safe_load((FILES / P769).read_text())["dosing"]
    assert "/kg" in dosing["regimen"] and "absolute" in dosing["note"]


def _broken(tmp_path: Path, edit) -> PolicyLoadError:
    data = yaml.safe_load((FILES / P481).read_text())
    edit(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyLoadError) as caught:
        load_policies(tmp_path)
    return caught.value


@pytest.mark.parametrize(
    "edit, pointer, message",
    [
        (lambda d: d["initial_approval"]["children"][2].update(check="age_over"),
         "/initial_approval/children/2/check", "unknown check 'age_over'"),
        (lambda d: d["initial_approval"]["children"][3]["children"][0]["children"][0]["params"].update(min_g_dl="0.5"),
         "/initial_approval/children/3/children/0/children/0/params/min_g_dl", "is not of type 'number'"),
        (lambda d: d["initial_approval"]["children"][1].update(id="I.A.1"),
         "/initial_approval/children/1/id", "duplicate criterion id 'I.A.1'"),
        (lambda d: d["initial_approval"]["children"][1].update(id="I.A.two"),
         "/initial_approval/children/1/id", "does not match"),
        (lambda d: d["initial_approval"]["children"][4]["children"][0].update(id="I.B.1"),
         "/initial_approval/children/4/children/0/id", "not numbered under 'I.A.5'"),
        (lambda d: d["initial_approval"]["children"][5]["params"]["value_sets"].append("brain-fog"),
         "/initial_approval/children/5/params/value_sets", "unknown value set 'brain-fog'"),
        (lambda d: d["initial_approval"]["children"][2]["params"].pop("min_years"),
         "/initial_approval/children/2/params", "'min_years' is a required property"),
        (lambda d: d["approval"].update(duration_months="3 months"),
         "/approval/duration_months", "is not of type 'integer'"),
        (lambda d: d["other_diagnoses"]["rules"][0]["policies"].pop("ichra"),
         "/other_diagnoses/rules/0/policies", "no referral policy for line(s) of business ['ichra']"),
    ],
)
def test_broken_file_fails_with_file_and_pointer(tmp_path, edit, pointer, message):
    error = _broken(tmp_path, edit)
    hits = [e for e in error.errors if e.pointer == pointer]
    assert hits, [str(e) for e in error.errors]
    assert all(e.file == "broken.yaml" for e in error.errors)
    assert message in hits[0].message
    assert f"broken.yaml: {pointer}: " in str(error)


def test_value_sets_are_checked_against_the_known_set(tmp_path):
    """A file referring to a value set that is not shipped fails; the same file loads once it exists."""
    text = (FILES / P481).read_text()
    with pytest.raises(PolicyLoadError) as caught:
        parse_policy(text, P481, known_value_sets=frozenset({"multiple-myeloma"}))
    assert any(e.pointer == "/product/value_set" for e in caught.value.errors)
    assert any(re.search(r"unknown value set 'oncology-hematology-specialties'", e.message) for e in caught.value.errors)


def test_invalid_yaml_and_clashing_versions(tmp_path):
    """Two files of one policy must differ in version name and first day in force: otherwise which one
    decides an order would depend on file order."""
    (tmp_path / "a.yaml").write_text("policy: [unclosed\n")
    with pytest.raises(PolicyLoadError, match=r"a\.yaml: /: not valid YAML at line"):
        load_policies(tmp_path)
    (tmp_path / "a.yaml").write_text((FILES / P481).read_text())
    (tmp_path / "b.yaml").write_text((FILES / P481).read_text())
    with pytest.raises(PolicyLoadError) as caught:
        load_policies(tmp_path)
    assert [str(e) for e in caught.value.errors] == [
        "b.yaml: /policy/version: policy CP.PHAR.481 version 2026-05 also in a.yaml",
        "b.yaml: /policy/in_force/from: policy CP.PHAR.481 first day in force 2026-03-26 also in a.yaml",
    ]


def test_empty_directory_fails(tmp_path):
    with pytest.raises(PolicyLoadError, match="no policy files"):
        load_policies(tmp_path)


def test_the_version_in_force_is_the_latest_started_one_unless_it_has_ended():
    """Several versions of one policy: a later version supersedes an earlier one from its first day; a
    version past its own ``until`` leaves no version in force (the superseded one never comes back)."""
    (p481,) = [p for p in shipped_policies() if p.id == "CP.PHAR.481"]
    annual = with_(p481, version="2026-05", in_force_from=date(2026, 3, 26), in_force_until=None)
    mid_year = with_(p481, version="2026-11", in_force_from=date(2026, 11, 4), in_force_until=date(2027, 3, 31))
    versions = (mid_year, annual)
    assert in_force(versions, date(2026, 3, 25)) == ()
    assert in_force(versions, date(2026, 11, 3)) == (annual,)
    assert in_force(versions, date(2026, 11, 4)) == (mid_year,)
    assert in_force(versions, date(2027, 3, 31)) == (mid_year,)
    assert in_force(versions, date(2027, 4, 1)) == ()
