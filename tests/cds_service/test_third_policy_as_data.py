"""A third policy is a data file plus its value sets: no code change, end to end in a fresh process.

The policy and its product are FICTIONAL, written for this test ("zetacabtagene testleucel", policy
CP.TEST.900, a product code in a test-only code system): nothing here claims a real code or a real
payer's criteria. The directories are given to the service the way a payer deploys them
(``CART_CDS_POLICY_DIR`` / ``CART_CDS_VALUE_SET_DIR``), in subprocesses, since value sets are process-wide.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cds_service.conftest import TEST_ENVIRONMENT

REPO = Path(__file__).parents[2]
SANDBOX = REPO / "sandbox"
TEST_PRODUCTS = "https://cart-cds.example.org/fhir/CodeSystem/test-only-products"

POLICY = """
policy:
  id: CP.TEST.900
  title: "Clinical Policy: Zetacabtagene Testleucel (fictional, for tests)"
  version: "2026-09"
  effective: "2026-09-01"
  in_force: {from: 2026-09-01}
  last_review: "2026-09"
  lines_of_business: [commercial]
  lines_of_business_text: "Commercial"
product:
  display: "zetacabtagene testleucel (fictional)"
  names: ["zetacabtagene testleucel", "zeta-cel"]
  value_set: zetacabtagene-testleucel
  codes: []
initial_approval:
  id: I.A
  text: "Multiple myeloma (must meet all)"
  logic: all
  children:
    - {id: I.A.1, text: "Diagnosis of relapsed or refractory multiple myeloma", check: myeloma_relapsed_refractory,
       documentation: "Diagnosis of relapsed or refractory multiple myeloma"}
    - {id: I.A.2, text: "Age >= 18 years", check: age_at_least, params: {min_years: 18}, documentation: "Date of birth"}
    - {id: I.A.3, text: "Dose does not exceed 400 x 10^6 CAR-positive T cells", check: cell_dose_at_most,
       params: {max_millions: 400, basis: absolute}, documentation: "Ordered dose in cells"}
other_diagnoses:
  id: I.B
  text: "Other diagnoses"
  applies_when_not_met: III.A
  rules:
    - {criterion: I.B.2, kind: off-label, text: "Off-label use policy", policies: {commercial: CP.CPA.09}}
continued_therapy:
  criterion:
    id: II.A.1
    text: "One dose only"
    check: no_prior_exposure
    params: {value_sets: [zetacabtagene-testleucel], label: "zetacabtagene testleucel infusion"}
    documentation: "Treatment history showing no prior infusion"
  approval_duration: "Not applicable"
  other_diagnoses:
    id: II.B
    text: "Other diagnoses"
    rules:
      - {criterion: II.B.2, kind: off-label, text: "Off-label use policy", policies: {commercial: CP.CPA.09}}
exclusions:
  text: "Not authorized"
  criteria:
    - {id: III.A, text: "Non-FDA approved indications", check: indication_is_multiple_myeloma}
approval:
  text: "3 months, 1 dose"
  duration_months: 3
  doses: 1
  pdac_review_required: false
  hcpcs: []
  tocilizumab:
    id: I.A.approval.tocilizumab
    text: "2 doses of tocilizumab up to 800 mg"
    check: tocilizumab_within_allowance
    params: {max_doses: 2, max_mg_per_dose: 800}
"""

VALUE_SET = {
    "id": "zetacabtagene-testleucel",
    "title": "Fictional CAR-T product for tests",
    "codes": [{"system": TEST_PRODUCTS, "code": "ZETA-CEL", "display": "zetacabtagene testleucel",
               "confidence": "test-only"}],
    "text_terms": ["zetacabtagene testleucel", "zeta-cel"],
}


def hook_for_fictional_product(dose_millions: int) -> dict:
    """The sandbox's meets-all Abecma record, with the order for the fictional product instead."""
    hook = json.loads((SANDBOX / "hooks" / "abecma-meets-all-criteria-prefetch.json").read_text(encoding="utf-8"))
    order = hook["context"]["draftOrders"]["entry"][0]["resource"]
    order["medicationCodeableConcept"] = {"coding": [{"system": TEST_PRODUCTS, "code": "ZETA-CEL"}],
                                          "text": "zetacabtagene testleucel suspension for IV infusion"}
    order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = dose_millions
    return hook


@pytest.fixture
def payer(tmp_path) -> dict[str, Path]:
    folders = {name: tmp_path / name for name in ("policies", "value_sets", "cases")}
    for folder in folders.values():
        folder.mkdir()
    (folders["policies"] / "cp-test-900.yaml").write_text(POLICY, encoding="utf-8")
    (folders["value_sets"] / "zetacabtagene-testleucel.json").write_text(json.dumps(VALUE_SET), encoding="utf-8")
    order = "MedicationRequest/abecma-meets-all-criteria-cart"
    for name, dose, verdict, criteria in (("within-dose", 350, "meets-policy", {"I.A.3": "met", "I.A.1": "met"}),
                                          ("above-dose", 450, "does-not-meet", {"I.A.3": "not-met"})):
        (folders["cases"] / "hooks").mkdir(exist_ok=True)
        (folders["cases"] / "hooks" / f"{name}.json").write_text(json.dumps(hook_for_fictional_product(dose)))
        (folders["cases"] / f"{name}.json").write_text(json.dumps({
            "asOf": "2026-11-24", "hooks": [f"hooks/{name}.json"], "order": order, "policy": "CP.TEST.900",
            "policyVersion": "2026-09", "verdict": verdict, "criteria": criteria}))
    return folders


def cart_cds(*args: str, payer: dict[str, Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, **TEST_ENVIRONMENT, "CART_CDS_POLICY_DIR": str(payer["policies"]), "CART_CDS_VALUE_SET_DIR": str(payer["value_sets"]),
           "CART_CDS_ALLOW_LOOPBACK_FHIR": "true"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)


def test_a_third_policy_validates_tests_and_serves_with_no_code_change(payer):
    validated = cart_cds("-m", "cds_service", "policy", "validate", str(payer["policies"]),
                         "--value-sets", str(payer["value_sets"]), payer=payer)
    assert validated.returncode == 0, validated.stderr
    assert "CP.TEST.900" in validated.stdout and "2026-09-01 .. superseded" in validated.stdout

    tested = cart_cds("-m", "cds_service", "policy", "test", str(payer["cases"]), payer=payer)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.splitlines()[-1] == "2 of 2 hooks as expected"

    # serve: the app a `cart-cds serve` worker runs, built from the same environment
    served = cart_cds("-c", textwrap.dedent(f"""
        import json, sys
        from cds_service import create_app
        app = create_app()
        hook = json.load(open({str(payer["cases"] / "hooks" / "within-dose.json")!r}))
        reply = app.test_client().post("/cds-services/car-t-coverage", json=hook)
        json.dump(reply.get_json(), sys.stdout)
    """), payer=payer)
    assert served.returncode == 0, served.stderr
    [card] = json.loads(served.stdout)["cards"]
    decision = card["extension"]["cart-cds.decision"]
    assert (decision["policy"], decision["policyVersion"]) == ("CP.TEST.900", "2026-09")
    assert "zetacabtagene testleucel (fictional)" in card["summary"]


def test_without_its_value_set_the_third_policy_does_not_load(payer):
    result = cart_cds("-m", "cds_service", "policy", "validate", str(payer["policies"]), payer=payer)
    assert result.returncode == 1
    assert "cp-test-900.yaml: /product/value_set: unknown value set 'zetacabtagene-testleucel'" in result.stderr


def test_a_bad_value_set_file_is_named(payer):
    (payer["value_sets"] / "broken.json").write_text(json.dumps({"id": "broken", "title": "x", "codes": [{"code": "1"}]}))
    result = cart_cds("-m", "cds_service", "policy", "validate", str(payer["policies"]),
                      "--value-sets", str(payer["value_sets"]), payer=payer)
    assert result.returncode == 1
    assert "broken.json: /codes/0: 'system' is a required property" in result.stderr
