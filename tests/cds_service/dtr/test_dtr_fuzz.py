"""Property tests: whatever a DTR client puts anywhere in a valid $questionnaire-package, $evaluate
or $log-questionnaire-errors body, the operation answers or refuses with an OperationError (a 4xx
naming the input), never another exception (which would be a 500)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dtr_fixtures import BASE, context_param, order_param, parameters, stored_context, with_answers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.dtr.evaluate import evaluate_operation
from cds_service.dtr.log_errors import parse_report
from cds_service.dtr.package import OperationError, questionnaire_package
from cds_service.dtr.questionnaire import questionnaires
from policies.loader import shipped_policies
from tests.cds_service.conftest import replaced
from tests.dtr_checks import outcome_problems
from tests.hypothesis_budget import examples

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
POLICIES = shipped_policies()
FORMS = questionnaires(POLICIES, BASE)
CONTEXT = stored_context(NOW + timedelta(days=1))
FIND = {CONTEXT.assertion_id: CONTEXT}.get
PACKAGE_BODY = parameters(context_param(), order_param())
_PACKAGE = questionnaire_package(PACKAGE_BODY, policies=POLICIES, forms=FORMS, find_context=FIND, now=NOW)
_FORM, _DRAFT = (e["resource"] for e in _PACKAGE["parameter"][0]["resource"]["entry"])
EVALUATE_BODY = {"resourceType": "Parameters", "parameter": [
    context_param(), {"name": "questionnaireResponse", "resource": with_answers(_DRAFT, _FORM, {"I.A.4.b.met": True})}]}

LOG_BODY = {"resourceType": "Parameters", "parameter": [
    {"name": "Questionnaire", "valueCanonical": _FORM["url"]},
    {"name": "OperationOutcome", "resource": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": "x"}]}}]}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=12,
)
FUZZ = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def paths(value, prefix=()):
    """Every (key or index) path into a JSON value, below the root."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def handled(operation, body):
    """The operation's answer, or None when it refused with a 4xx OperationError that a DTR app can show."""
    try:
        return operation(body)
    except OperationError as error:
        assert 400 <= error.status < 500 and outcome_problems(error.outcome()) == []
        return None


def parameters_or_refused(out) -> bool:
    return out is None or out["resourceType"] == "Parameters"


CASES = {
    "package": (PACKAGE_BODY, lambda b: questionnaire_package(b, policies=POLICIES, forms=FORMS, find_context=FIND,
                                                              now=NOW), parameters_or_refused),
    "evaluate": (EVALUATE_BODY, lambda b: evaluate_operation(b, policies=POLICIES, forms=FORMS, find_context=FIND,
                                                             now=NOW), parameters_or_refused),
    "log-errors": (LOG_BODY, lambda b: parse_report(b, FORMS),
                   lambda report: report is None or all(isinstance(c, str) for c in report.issue_codes)),
}


@pytest.mark.parametrize("operation", CASES)
@FUZZ
@given(data=st.data())
def test_any_value_anywhere_is_answered_or_refused_with_a_4xx(operation, data):
    body, call, acceptable = CASES[operation]
    path = data.draw(st.sampled_from(list(paths(body))), label="path")
    value = data.draw(json_values, label="value")
    assert acceptable(handled(call, replaced(body, path, value)))
