"""``cart-cds evaluate``: a recorded order-sign request evaluated offline, as the service would answer it."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from cds_service import cli, create_app
from cds_service.offline_evaluation import text_summary
from sandbox.replay_server import running
from tests.cds_service.conftest import HOOK_URL, TEST_ENVIRONMENT, protocol_settings
from tests.cds_service.test_order_sign_end_to_end import SANDBOX_FHIR, replay_recorded, sandbox_hook
from tests.crd_checks import check_coverage_information
from tests.response_checks import check_response

AS_OF = "2026-11-24"
LOOPBACK = {"CART_CDS_ALLOW_LOOPBACK_FHIR": "true"}  # sandbox hooks name the loopback replay server
TOCILIZUMAB_HOOK = "kite772-tocilizumab-within-allowance-prefetch"


def run(*args, env=None):
    return CliRunner().invoke(cli.main, ["evaluate", *map(str, args)], env={**TEST_ENVIRONMENT, **(env or {})})


def hook_file(tmp_path: Path, hook: dict | str, name: str = "hook.json") -> Path:
    path = tmp_path / name
    path.write_text(hook if isinstance(hook, str) else json.dumps(hook), encoding="utf-8")
    return path


def without_volatile(response: dict) -> dict:
    """The response with its random parts (card uuids, coverage-assertion ids) blanked."""
    text = json.dumps(response)
    for card in response.get("cards", []):
        text = text.replace(card["uuid"], "<uuid>")
    for action in response.get("systemActions", []):
        for extension in action["resource"].get("extension", []):
            for part in extension.get("extension", []):
                if part["url"] == "coverage-assertion-id":
                    text = text.replace(part["valueString"], "<assertion-id>")
    return json.loads(text)


# --------------------------------------------------------------------------------------------------
# JSON output: the service's answer
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [TOCILIZUMAB_HOOK, "dose-above-limit-prefetch", "kite772-birth-date-missing-prefetch"])
def test_json_output_is_the_services_response(tmp_path, name):
    hook = sandbox_hook(name)

    result = run(hook_file(tmp_path, hook), "--as-of", AS_OF, env=LOOPBACK)

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    check_response(printed, hook="order-sign", draft_orders=hook["context"]["draftOrders"], expect_system_actions=True)
    check_coverage_information(printed, hook["context"]["draftOrders"])
    service = create_app(protocol_settings(allow_loopback_fhir=True), as_of=date(2026, 11, 24)).test_client()
    assert without_volatile(printed) == without_volatile(service.post(HOOK_URL, json=hook).get_json())


def test_json_is_indented_unless_compact(tmp_path):
    path = hook_file(tmp_path, sandbox_hook(TOCILIZUMAB_HOOK))

    indented = run(path, "--as-of", AS_OF, env=LOOPBACK).stdout
    compact = run(path, "--as-of", AS_OF, "--compact", env=LOOPBACK).stdout

    assert indented.count("\n") > 100 and compact.count("\n") == 1
    assert without_volatile(json.loads(indented)) == without_volatile(json.loads(compact))


def test_the_decision_date_is_as_of(tmp_path):
    path = hook_file(tmp_path, sandbox_hook("kite772-age-17-prefetch"))

    def age_criterion(as_of: str) -> dict:
        result = run(path, "--as-of", as_of, env=LOOPBACK)
        assert result.exit_code == 0, result.output
        (card,) = json.loads(result.stdout)["cards"]
        return next(c for c in card["extension"]["cart-cds.decision"]["criteria"] if c["id"] == "I.A.3")

    assert age_criterion(AS_OF)["status"] == "not-met"
    assert age_criterion("2036-11-24")["status"] == "met"  # ten years later the member is an adult
    assert "2036-11-24" in age_criterion("2036-11-24")["reason"]


def test_no_in_scope_order_prints_empty_cards(tmp_path):
    hook = sandbox_hook(TOCILIZUMAB_HOOK)
    hook["context"]["draftOrders"]["entry"] = []

    result = run(hook_file(tmp_path, hook), "--as-of", AS_OF, env=LOOPBACK)

    assert result.exit_code == 0 and json.loads(result.stdout) == {"cards": []}


# --------------------------------------------------------------------------------------------------
# Text output
# --------------------------------------------------------------------------------------------------


def test_text_output_shows_every_criterion_with_its_evidence_and_the_coverage_information(tmp_path):
    path = hook_file(tmp_path, sandbox_hook(TOCILIZUMAB_HOOK))
    response = json.loads(run(path, "--as-of", AS_OF, env=LOOPBACK).stdout)

    result = run(path, "--as-of", AS_OF, "--format", "text", env=LOOPBACK)

    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"Decision date {AS_OF}: 2 cards, 2 coverage-information actions.")
    assert "Product:  anitocabtagene autoleucel (KITE-772)" in text
    assert "Policy:   CP.PHAR.769" in text and "Verdict:  meets-policy" in text
    lines = text.splitlines()
    for card in response["cards"]:
        assert f"  Summary:  {card['summary']}" in lines
        for criterion in card["extension"]["cart-cds.decision"]["criteria"]:
            assert any(line.split()[:2] == [criterion["status"], criterion["id"]] and criterion["reason"] in line
                       for line in lines), criterion["id"]
            for evidence in criterion.get("evidence", []):
                assert any(evidence["reference"] in line and evidence["element"] in line and evidence["value"] in line
                           for line in lines)
    assert "    coverage=Coverage/kite772-tocilizumab-within-allowance-cov, covered=covered, pa-needed=auth-needed, " \
           "doc-needed=clinical, doc-purpose=withpa, date=2026-11-24" in lines
    assert sum(line.startswith("    reason: ") for line in lines) == 2


def test_text_output_for_a_failed_retrieval_and_missing_documentation(tmp_path):
    indeterminate = run(hook_file(tmp_path, sandbox_hook("kite772-conditions-query-failed-prefetch")),
                        "--as-of", AS_OF, "--format", "text", env=LOOPBACK).stdout
    incomplete = run(hook_file(tmp_path, sandbox_hook("kite772-birth-date-missing-prefetch")),
                     "--as-of", AS_OF, "--format", "text", env=LOOPBACK).stdout

    assert "Verdict:  indeterminate" in indeterminate and "(retrieval failed)" in indeterminate
    assert "covered=indeterminate" in indeterminate and "reason: [technical]" in indeterminate
    assert "Verdict:  documentation-incomplete" in incomplete and "Documentation to submit:" in incomplete
    assert "covered=conditional" in incomplete and "info-needed=OTH" in incomplete


def test_text_output_of_an_empty_response():
    text = text_summary({"cards": []}, date(2026, 11, 24))

    assert "0 cards" in text and '{"cards": []}' in text


def test_text_output_neutralises_terminal_control_characters():
    response = {"cards": [{"summary": "X: meets", "indicator": "info", "extension": {"cart-cds.decision": {
        "order": "MedicationRequest/a", "policy": "P", "verdict": "meets-policy",
        "criteria": [{"id": "I.A", "status": "met", "reason": "ok\x1b[2J\x1b]0;owned\x07"}]}}}]}

    text = text_summary(response, date(2026, 11, 24))

    assert "\x1b" not in text and "\x07" not in text and "ok?[2J" in text


# --------------------------------------------------------------------------------------------------
# --fhir-server
# --------------------------------------------------------------------------------------------------


def test_fhir_server_option_replaces_the_requests_server_and_drops_its_token(tmp_path, http_mock):
    requested = replay_recorded(http_mock)
    hook = sandbox_hook("kite772-meets-all-criteria-no-prefetch")
    hook["fhirServer"] = "https://ehr.invalid/fhir"  # recorded server: must not be called
    hook["fhirAuthorization"] = {"access_token": "recorded-token", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds-service"}

    result = run(hook_file(tmp_path, hook), "--as-of", AS_OF, "--fhir-server", SANDBOX_FHIR)  # loopback: operator's choice

    assert result.exit_code == 0, result.output
    (card,) = json.loads(result.stdout)["cards"]
    assert card["extension"]["cart-cds.decision"]["verdict"] == "meets-policy"
    assert requested and all(call.request.url.startswith(SANDBOX_FHIR) for call in http_mock.calls)
    assert all("Authorization" not in call.request.headers for call in http_mock.calls)


def test_a_failing_fhir_server_gives_an_indeterminate_decision(tmp_path, http_mock):
    replay_recorded(http_mock, fail=lambda key: key.startswith("GET Condition?"))

    result = run(hook_file(tmp_path, sandbox_hook("kite772-meets-all-criteria-no-prefetch")),
                 "--as-of", AS_OF, "--fhir-server", SANDBOX_FHIR, "--format", "text")

    assert result.exit_code == 0, result.output
    assert "Verdict:  indeterminate" in result.stdout and "(retrieval failed)" in result.stdout


@pytest.mark.loopback_http
def test_against_the_running_sandbox_replay_server(tmp_path):
    """The documented workflow: ``cart-cds sandbox fhir-server`` + ``evaluate --fhir-server`` on a
    no-prefetch hook gives the decision the same hook gets with its prefetch."""
    with running() as base:
        live = run(hook_file(tmp_path, sandbox_hook("kite772-birth-date-missing-no-prefetch")),
                   "--as-of", AS_OF, "--fhir-server", base)
    prefetched = run(hook_file(tmp_path, sandbox_hook("kite772-birth-date-missing-prefetch")), "--as-of", AS_OF, env=LOOPBACK)

    assert live.exit_code == 0, live.output

    def criteria(result):
        (card,) = json.loads(result.stdout)["cards"]
        return card["extension"]["cart-cds.decision"]["verdict"], card["extension"]["cart-cds.decision"]["criteria"]

    assert criteria(live) == criteria(prefetched)
    assert criteria(live)[0] == "documentation-incomplete"


# --------------------------------------------------------------------------------------------------
# Bad input: a message naming the JSON path, exit status 2, no traceback
# --------------------------------------------------------------------------------------------------


def assert_refused(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_a_file_that_is_not_json(tmp_path):
    path = hook_file(tmp_path, '{"hook": "order-sign",', "broken.json")

    assert_refused(run(path), "broken.json", "not valid JSON", "line 1")


@pytest.mark.parametrize(("change", "path"), [
    (lambda hook: hook.pop("hookInstance"), "hookInstance: is required"),
    (lambda hook: hook.update(hook="patient-view"), "hook: must be"),
    (lambda hook: hook["context"]["draftOrders"]["entry"][0].pop("resource"), "context.draftOrders.entry[0].resource: is required"),
    (lambda hook: hook["context"].update(patientId=42), "context.patientId: must be a FHIR id"),
    (lambda hook: hook.setdefault("extension", {}).update({"davinci-crd.configuration": {"max-cards": "two"}}),
     'extension["davinci-crd.configuration"]["max-cards"]: must be'),
])
def test_an_invalid_order_sign_request_names_the_json_path(tmp_path, change, path):
    hook = sandbox_hook(TOCILIZUMAB_HOOK)
    change(hook)

    assert_refused(run(hook_file(tmp_path, hook), env=LOOPBACK), "hook.json: ", path)


def test_a_refused_fhir_server_in_the_file(tmp_path):
    hook = sandbox_hook("kite772-meets-all-criteria-no-prefetch")
    hook["fhirServer"] = "https://169.254.169.254/latest"

    assert_refused(run(hook_file(tmp_path, hook)), "fhirServer refused", "--fhir-server")


def test_a_loopback_fhir_server_in_the_file_needs_the_development_setting(tmp_path):
    assert_refused(run(hook_file(tmp_path, sandbox_hook(TOCILIZUMAB_HOOK))),
                   "fhirServer refused", "CART_CDS_ALLOW_LOOPBACK_FHIR")


def test_a_refused_fhir_server_option(tmp_path, http_mock):
    result = run(hook_file(tmp_path, sandbox_hook("kite772-meets-all-criteria-no-prefetch")),
                 "--fhir-server", "http://169.254.169.254/")

    assert_refused(result, "--fhir-server: fhirServer refused")
    assert len(http_mock.calls) == 0


def test_no_record_data_at_all(tmp_path):
    hook = sandbox_hook("kite772-meets-all-criteria-no-prefetch")
    del hook["fhirServer"]

    assert_refused(run(hook_file(tmp_path, hook)), "No patient record data", "--fhir-server URL")


def test_a_file_over_the_body_limit(tmp_path):
    path = hook_file(tmp_path, sandbox_hook(TOCILIZUMAB_HOOK))

    assert_refused(run(path, env={**LOOPBACK, "CART_CDS_MAX_BODY_BYTES": "1000"}), "CART_CDS_MAX_BODY_BYTES")


def test_a_request_over_the_input_limits(tmp_path):
    hook = sandbox_hook(TOCILIZUMAB_HOOK)
    order = hook["context"]["draftOrders"]["entry"][0]
    hook["context"]["draftOrders"]["entry"] = [order] * 60

    assert_refused(run(hook_file(tmp_path, hook), env=LOOPBACK), "context.draftOrders.entry")


def test_a_missing_file_and_a_bad_date_are_usage_errors(tmp_path):
    assert run(tmp_path / "absent.json").exit_code == 2
    path = hook_file(tmp_path, sandbox_hook(TOCILIZUMAB_HOOK))
    assert run(path, "--as-of", "24/11/2026", env=LOOPBACK).exit_code == 2


def test_a_bad_setting_stops_with_status_1(tmp_path):
    result = run(hook_file(tmp_path, sandbox_hook(TOCILIZUMAB_HOOK)), env={"CART_CDS_FHIR_MAX_PAGES": "many"})

    assert result.exit_code == 1 and "CART_CDS_FHIR_MAX_PAGES" in result.stderr and "Traceback" not in result.output


def test_client_authentication_settings_do_not_matter_offline(tmp_path):
    result = run(hook_file(tmp_path, sandbox_hook(TOCILIZUMAB_HOOK)), "--as-of", AS_OF,
                 env={**LOOPBACK, "CART_CDS_AUTH_DISABLED": "false"})

    assert result.exit_code == 0, result.output


def test_the_documented_example_still_gives_the_documented_decisions(tmp_path):
    """docs/example.md shows a request and the response ``evaluate`` printed for it: the request must
    still be valid and still give those verdicts and criterion statuses (texts may be reworded)."""
    page = (Path(__file__).parents[2] / "docs" / "example.md").read_text(encoding="utf-8")
    request, documented = (json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", page, re.S)[:2])

    result = run(hook_file(tmp_path, request), "--as-of", AS_OF, env=LOOPBACK)

    assert result.exit_code == 0, result.output

    def decisions(response):
        return [(d["order"], d["verdict"], [(c["id"], c["status"]) for c in d["criteria"]])
                for d in (card["extension"]["cart-cds.decision"] for card in response["cards"])]

    assert decisions(json.loads(result.stdout)) == decisions(documented)
    check_coverage_information(documented, request["context"]["draftOrders"])
