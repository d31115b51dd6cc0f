"""$log-questionnaire-errors: what a DTR app reports is acknowledged, and only which form and how
many issues of which codes reach the log, never an issue's text or location."""

from __future__ import annotations

import json
import logging

import pytest
from dtr_fixtures import BASE

from cds_service.dtr.log_errors import log_report, parse_report
from cds_service.dtr.package import OperationError
from cds_service.dtr.questionnaire import questionnaires
from cds_service.log_safety import JsonFormatter
from policies.loader import shipped_policies
from tests.dtr_checks import outcome_problems

FORMS = questionnaires(shipped_policies(), BASE)
FORM = FORMS["CP.PHAR.481"]
SECRET = "Jane Doe DOB 1961-11-11 in item I.A.3.fact"


def report(canonical: str) -> dict:
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": SECRET, "expression": ["item[2]"]},
        {"severity": "warning", "code": "not-supported", "details": {"text": SECRET}}]}
    return {"resourceType": "Parameters", "parameter": [
        {"name": "Questionnaire", "valueCanonical": canonical}, {"name": "OperationOutcome", "resource": outcome}]}


def test_a_report_on_our_form_is_logged_without_its_content(caplog):
    parsed = parse_report(report(f"{FORM['url']}|{FORM['version']}"), FORMS)
    assert (parsed.policy, parsed.version, parsed.issue_codes) == ("CP.PHAR.481", FORM["version"],
                                                                   ("processing", "not-supported"))
    with caplog.at_level(logging.WARNING, logger="cds_service.dtr.log_errors"):
        answer = log_report(parsed)
    assert outcome_problems(answer) == []
    line = JsonFormatter().format(caplog.records[-1])
    assert json.loads(line)["count"] == 2 and "Jane" not in line and "item[2]" not in line


@pytest.mark.parametrize("canonical, policy, version", [
    (f"{BASE}/Questionnaire/cp-phar-481|Jane-Doe", "CP.PHAR.481", "other"),
    (f"{BASE}/Questionnaire/cp-phar-481", "CP.PHAR.481", None),
    ("https://elsewhere.example/Questionnaire/x|1", None, None),
])
def test_versions_and_forms_not_ours_are_never_echoed(canonical, policy, version):
    parsed = parse_report(report(canonical), FORMS)
    assert (parsed.policy, parsed.version) == (policy, version)


@pytest.mark.parametrize("body, expression", [
    ({"resourceType": "Bundle"}, "Parameters"),
    ({"resourceType": "Parameters", "parameter": []}, "Questionnaire"),
    ({"resourceType": "Parameters", "parameter": [{"name": "Questionnaire", "valueCanonical": "x"}]},
     "OperationOutcome"),
])
def test_a_report_without_its_inputs_is_400(body, expression):
    with pytest.raises(OperationError) as caught:
        parse_report(body, FORMS)
    assert (caught.value.status, caught.value.expression) == (400, expression)
