"""CRD -> DTR link: the coverage-information of an order that needs clinical documentation with the
prior authorization names the policy's form (``questionnaire``) and ``doc-purpose`` ``withpa``; a
contradicted criterion, a technical failure and a co-signed tocilizumab order name none; every
extension keeps the CRD invariants; the canonical resolves to the form the package serves."""

from __future__ import annotations

from datetime import date

import pytest
from dtr_service import AS_OF, coverage_information, hook, sign, simple_parts

from cds_service import create_app
from cds_service.dtr.questionnaire import canonical_url, form_canonicals
from cds_service.response.coverage_information import (
    COVERAGE_INFORMATION_URL,
    coverage_information_actions,
)
from policies import Status, shipped_policies
from tests.cds_service import decision_examples as ex
from tests.cds_service.conftest import protocol_settings
from tests.crd_checks import check_coverage_information, extension_problems

BASE = "https://payer.example/fhir"
FORMS = {policy.id: canonical_url(policy, BASE) for policy in shipped_policies()}


def extension_of(decision) -> dict:
    [action] = coverage_information_actions([decision], ex.draft_orders(), date(2026, 11, 24), questionnaires=FORMS)
    [extension] = [e for e in action.as_json()["resource"]["extension"] if e["url"] == COVERAGE_INFORMATION_URL]
    assert extension_problems(extension) == []
    return simple_parts(extension)


@pytest.mark.parametrize("build, linked", [
    (ex.abecma_meets, True), (ex.abecma_incomplete, True),
    (ex.kite_does_not_meet, False), (ex.kite_indeterminate, False),
    (lambda: ex.tocilizumab(Status.MET, "560", "1"), False),
], ids=["meets", "incomplete", "does-not-meet", "indeterminate", "tocilizumab"])
def test_only_orders_needing_documentation_with_the_pa_name_the_policy_form(build, linked):
    decision = build()
    parts = extension_of(decision)
    assert parts.get("questionnaire") == (FORMS[decision.policy_id] if linked else None)
    if linked:
        assert parts["doc-purpose"] == "withpa" and parts["doc-needed"] == "clinical"


def test_without_a_form_base_nothing_is_linked():
    [action] = coverage_information_actions([ex.abecma_incomplete()], ex.draft_orders(), date(2026, 11, 24))
    assert "questionnaire" not in str(action.as_json())


@pytest.mark.parametrize("scenario, linked", [
    ("abecma-meets-all-criteria", True), ("missing-labs", True), ("cns-involvement", False)])
def test_the_service_links_the_form_it_serves(sandbox_app, scenario, linked):
    body = hook(scenario)
    answer = sign(sandbox_app, body)
    check_coverage_information(answer, body["context"]["draftOrders"])
    [info] = coverage_information(answer)
    assert ("questionnaire" in info) is linked
    if linked:
        path = info["questionnaire"].removeprefix("https://payer.example")
        served = sandbox_app.test_client().get(path)
        assert served.status_code == 200 and served.get_json()["url"] == info["questionnaire"]


def test_without_a_public_base_url_the_service_links_no_form():
    """The request's Host is chosen by the client and must never become a canonical in the EHR's order."""
    assert form_canonicals(shipped_policies(), None) == {}
    app = create_app(protocol_settings(), as_of=AS_OF)
    [info] = coverage_information(sign(app, hook("missing-labs")))
    assert "questionnaire" not in info and info["doc-purpose"] == "withpa"
