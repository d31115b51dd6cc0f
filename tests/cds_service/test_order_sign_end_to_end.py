"""The order-sign hook end to end, through the Flask test client, on realistic requests for both products.

Requests are the sandbox's recorded hooks (an Epic- or Cerner-shaped patient with a full prefetch) or
copies of them changed in the test -- a lab removed, a second CAR-T order added, an out-of-scope order
next to the in-scope one, the diagnosis or the member's coverage changed -- so each test states the one
thing that differs from a known request and what the service must answer for it. Every 200 response
passes the CDS Hooks / Inferno response checks and the CRD coverage-information invariants, and every
updated order is the draft order exactly as sent plus the one coverage-information extension.

FHIR traffic: a full-prefetch hook needs none (the autouse ``http_mock`` fails any request); the
no-prefetch hooks are answered from the sandbox's recorded responses (``replay_recorded``).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from pathlib import Path

import pytest
import responses

from cds_service import create_app
from sandbox.recorded import RECORDED, key_for_url, load_dir
from tests.cds_service.conftest import HOOK_URL, protocol_settings
from tests.crd_checks import COVERAGE_INFORMATION_URL, check_coverage_information
from tests.response_checks import check_response

HOOKS = Path(__file__).parents[2] / "sandbox" / "hooks"
AS_OF = date(2026, 11, 24)
SANDBOX_FHIR = "http://127.0.0.1:8090/fhir"  # the fhirServer every sandbox hook names
DECISION = "cart-cds.decision"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SOPT = "https://nahdo.org/sopt"
LINE_OF_BUSINESS = "https://cart-cds.example.org/fhir/CodeSystem/line-of-business"
# The contract's coverage-information table: verdict -> (covered, pa-needed, doc-needed).
COVERAGE_CODES = {
    "meets-policy": ("covered", "auth-needed", "clinical"),
    "documentation-incomplete": ("conditional", "auth-needed", "clinical"),
    "does-not-meet": ("not-covered", None, None),
    "indeterminate": ("indeterminate", "indeterminate", "indeterminate"),
}
INDICATOR = {"meets-policy": "info", "documentation-incomplete": "warning", "indeterminate": "warning",
             "does-not-meet": "critical"}


# --------------------------------------------------------------------------------------------------
# Requests, replayed FHIR answers and the checks every response gets
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    return create_app(protocol_settings(allow_loopback_fhir=True), as_of=AS_OF).test_client()


def sandbox_hook(name: str) -> dict:
    """A fresh copy of ``sandbox/hooks/<name>.json``."""
    return json.loads((HOOKS / f"{name}.json").read_text(encoding="utf-8"))


def replay_recorded(http_mock: responses.RequestsMock, base: str = SANDBOX_FHIR, *, fail=lambda key: False) -> list[str]:
    """Answer GETs under ``base`` from the sandbox's recorded responses; a request whose key ``fail``
    selects gets HTTP 500. Returns the list of keys requested (in order)."""
    recorded = load_dir(RECORDED / "replay", base)
    requested: list[str] = []

    def answer(request):
        key = key_for_url("GET", request.url, base)
        requested.append(key)
        if fail(key):
            return 500, {"Content-Type": "application/fhir+json"}, json.dumps(
                {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]})
        entry = recorded.get(key)
        if entry is None:
            return 404, {}, ""
        return entry["status"], {"Content-Type": "application/fhir+json"}, json.dumps(entry["body"])

    http_mock.add_callback(responses.GET, re.compile(re.escape(base) + r"([/?].*)?$"), callback=answer)
    return requested


def draft_orders(hook: dict) -> list[dict]:
    return [entry["resource"] for entry in hook["context"]["draftOrders"]["entry"]]


def add_draft_order(hook: dict, resource: dict) -> None:
    hook["context"]["draftOrders"]["entry"].append({"resource": resource})


def remove_draft_order(hook: dict, order_id: str) -> None:
    entries = hook["context"]["draftOrders"]["entry"]
    entries[:] = [e for e in entries if e["resource"]["id"] != order_id]


def prefetch_resources(hook: dict, key: str) -> list[dict]:
    return [entry["resource"] for entry in hook["prefetch"][key].get("entry", [])]


def signed(client, hook: dict, *, coverage: bool = True) -> dict:
    """POST the hook; assert 200 and every response invariant; return the body. ``coverage``: the
    in-scope orders had a Coverage, so the response must carry system actions."""
    response = client.post(HOOK_URL, json=hook)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    orders = hook["context"]["draftOrders"]
    check_response(body, hook="order-sign", draft_orders=orders, expect_system_actions=bool(body["cards"]) and coverage)
    check_coverage_information(body, orders)
    drafts = {f"{r['resourceType']}/{r['id']}": r for r in draft_orders(hook)}
    for action in body.get("systemActions", []):
        updated = copy.deepcopy(action["resource"])
        added = [e for e in updated.get("extension", []) if e.get("url") == COVERAGE_INFORMATION_URL]
        assert len(added) == 1
        updated["extension"].remove(added[0])
        if not updated["extension"]:
            del updated["extension"]
        assert updated == drafts[f"{updated['resourceType']}/{updated['id']}"]  # the draft order, unchanged
    return body


def card_for(body: dict, order: str) -> dict:
    (card,) = [c for c in body["cards"] if c["extension"][DECISION]["order"] == order]
    return card


def statuses(card: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in card["extension"][DECISION]["criteria"]}


def criterion(card: dict, criterion_id: str) -> dict:
    (found,) = [c for c in card["extension"][DECISION]["criteria"] if c["id"] == criterion_id]
    return found


def coverage_information(body: dict, order: str) -> dict[str, object]:
    """The coverage-information sub-extensions written on ``order``: url -> value (code, reference, text)."""
    (action,) = [a for a in body.get("systemActions", [])
                 if f"{a['resource']['resourceType']}/{a['resource']['id']}" == order]
    (extension,) = [e for e in action["resource"]["extension"] if e["url"] == COVERAGE_INFORMATION_URL]
    values = {}
    for part in extension["extension"]:
        value = next(v for k, v in part.items() if k.startswith("value"))
        values[part["url"]] = value.get("reference") or value.get("text") if isinstance(value, dict) else value
    return values


def assert_verdict(body: dict, order: str, verdict: str) -> dict:
    """The card for ``order`` shows ``verdict`` consistently: decision, indicator, coverage-information codes."""
    card = card_for(body, order)
    assert card["extension"][DECISION]["verdict"] == verdict
    assert card["indicator"] == INDICATOR[verdict]
    info = coverage_information(body, order)
    assert (info["covered"], info.get("pa-needed"), info.get("doc-needed")) == COVERAGE_CODES[verdict]
    return card


# --------------------------------------------------------------------------------------------------
# Baseline requests (full prefetch, no FHIR I/O) and the orders added to them
# --------------------------------------------------------------------------------------------------


def abecma_meets() -> dict:
    """An Abecma order that meets CP.PHAR.481 (commercial member): the tocilizumab-within-allowance hook
    without its tocilizumab order."""
    hook = sandbox_hook("tocilizumab-within-allowance-prefetch")
    remove_draft_order(hook, "tocilizumab-within-allowance-toci")
    return hook


ABECMA_ORDER = "MedicationRequest/tocilizumab-within-allowance-cart"
KITE_ORDER = "MedicationRequest/kite772-meets-all-criteria-cart"


def kite772_order_for(hook: dict, order_id: str) -> dict:
    """The KITE-772 draft order of the kite772-meets-all-criteria hook, re-addressed to ``hook``'s patient."""
    order = copy.deepcopy(draft_orders(sandbox_hook("kite772-meets-all-criteria-prefetch"))[0])
    template = draft_orders(hook)[0]
    order.update(id=order_id, subject=template["subject"], requester=template["requester"])
    return order


def dexamethasone_draft(hook: dict) -> dict:
    """An out-of-scope order: the patient's own dexamethasone prescription (from the prefetch history)
    written again as a new draft order."""
    prior = next(r for r in prefetch_resources(hook, "medicationRequests")
                 if "dexamethasone" in json.dumps(r.get("medicationCodeableConcept")).lower())
    order = copy.deepcopy(prior)
    order.update(id="dexamethasone-draft", status="draft", intent="order", authoredOn="2026-11-24")
    return order


# --------------------------------------------------------------------------------------------------
# Each verdict, for both products
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hook_name", "verdict", "cause"), [
    ("tocilizumab-within-allowance-prefetch", "meets-policy", None),
    ("dose-above-limit-prefetch", "does-not-meet", ("I.A.10", "not-met")),
    ("missing-labs-prefetch", "documentation-incomplete", ("I.A.4", "unknown")),
    ("fhir-server-failure-prefetch", "indeterminate", ("I.A.4", "unknown")),
    ("kite772-meets-all-criteria-prefetch", "meets-policy", None),
    ("kite772-dose-above-limit-prefetch", "does-not-meet", ("I.A.10", "not-met")),
    ("kite772-birth-date-missing-prefetch", "documentation-incomplete", ("I.A.3", "unknown")),
    ("kite772-conditions-query-failed-prefetch", "indeterminate", ("I.A.1", "unknown")),
])
def test_each_verdict_for_both_products(client, hook_name, verdict, cause):
    hook = sandbox_hook(hook_name)
    order = draft_orders(hook)[0]
    reference = f"MedicationRequest/{order['id']}"
    product = "Abecma" if hook_name.startswith(("tocilizumab", "dose", "missing", "fhir")) else "KITE-772"

    body = signed(client, hook)

    card = assert_verdict(body, reference, verdict)
    assert product in card["summary"] and len(card["summary"]) < 140
    policy = card["extension"][DECISION]["policy"]
    assert policy == ("CP.PHAR.481" if product == "Abecma" else "CP.PHAR.769")
    assert card["source"]["label"] == "Example Health Plan"
    assert coverage_information(body, reference)["coverage"].startswith("Coverage/")
    if cause is None:
        assert set(statuses(card).values()) >= {"met"}
        assert "3 months" in card["detail"] and "PDAC" in card["detail"]
        return
    criterion_id, status = cause
    assert statuses(card)[criterion_id] == status
    assert f"**{criterion_id}**" in card["detail"]
    assert criterion_id in coverage_information(body, reference)["reason"]
    if verdict == "indeterminate":
        assert criterion(card, criterion_id).get("retrievalFailed") is True
        assert "could not be retrieved" in card["detail"] and "Documentation to submit" not in card["detail"]
    if verdict == "documentation-incomplete":
        assert "Documentation to submit" in card["detail"] and f"[ ] **{criterion_id}**" in card["detail"]


def test_removing_the_labs_turns_a_met_policy_into_documentation_incomplete(client):
    hook = abecma_meets()
    hook["prefetch"]["observations"]["entry"] = []
    hook["prefetch"]["observations"]["total"] = 0

    body = signed(client, hook)

    card = assert_verdict(body, ABECMA_ORDER, "documentation-incomplete")
    assert statuses(card)["I.A.4"] == "unknown" and statuses(card)["I.A.4.a.i"] == "unknown"
    assert statuses(card)["I.A.3"] == "met"  # nothing else changed
    assert "I.A.4" in coverage_information(body, ABECMA_ORDER)["reason"]
    assert card["extension"][DECISION]["missingDocumentation"]


# --------------------------------------------------------------------------------------------------
# Diagnosis outside the policy: referral by line of business
# --------------------------------------------------------------------------------------------------


def with_lymphoma_diagnosis(hook: dict) -> dict:
    """The same request, but the patient's cancer is diffuse large B-cell lymphoma (ICD-10-CM C83.30)."""
    for condition in prefetch_resources(hook, "conditions"):
        codes = [c.get("code", "") for c in condition["code"]["coding"]]
        if any(code.startswith("C90") for code in codes):
            condition["code"] = {"coding": [{"system": ICD10, "code": "C83.30",
                                             "display": "Diffuse large B-cell lymphoma, unspecified site"}],
                                 "text": "Diffuse large B-cell lymphoma"}
    return hook


def with_coverage_type(hook: dict, system: str, code: str) -> dict:
    (coverage,) = prefetch_resources(hook, "coverage")
    coverage["type"] = {"coding": [{"system": system, "code": code}]}
    coverage.pop("class", None)
    return hook


@pytest.mark.parametrize(("request_for", "line_of_business", "off_label_policy"), [
    (lambda: abecma_meets(), "commercial", "CP.CPA.09"),  # the sandbox member: SOPT 5 (commercial)
    (lambda: with_coverage_type(abecma_meets(), LINE_OF_BUSINESS, "ichra"), "ichra", "HIM.PA.154"),
    (lambda: with_coverage_type(abecma_meets(), LINE_OF_BUSINESS, "marketplace"), "marketplace", "HIM.PA.154"),
    (lambda: with_coverage_type(abecma_meets(), SOPT, "2"), "medicaid", "CP.PMN.53"),
    (lambda: sandbox_hook("kite772-medicaid-member-prefetch"), "medicaid", "CP.PMN.53"),
], ids=["abecma-commercial", "abecma-ichra", "abecma-marketplace", "abecma-medicaid", "kite772-medicaid"])
def test_a_diagnosis_other_than_the_policy_indication_is_referred_by_line_of_business(
        client, request_for, line_of_business, off_label_policy):
    hook = with_lymphoma_diagnosis(request_for())
    reference = f"MedicationRequest/{draft_orders(hook)[0]['id']}"

    body = signed(client, hook)

    card = assert_verdict(body, reference, "does-not-meet")
    assert statuses(card)["I.A.1"] == "not-met" and statuses(card)["III.A"] == "not-met"
    referral = card["extension"][DECISION]["referral"]
    assert {p["lineOfBusiness"] for p in referral["policies"]} == {line_of_business}  # the member's own only
    assert off_label_policy in {p["policy"] for p in referral["policies"]}
    assert off_label_policy in card["detail"]


def test_an_unrecognised_line_of_business_lists_the_referral_policies_of_every_line(client):
    hook = with_lymphoma_diagnosis(with_coverage_type(abecma_meets(), "https://payer.example.org/plan-type", "GOLD"))

    body = signed(client, hook)

    referral = card_for(body, ABECMA_ORDER)["extension"][DECISION]["referral"]
    assert {p["lineOfBusiness"] for p in referral["policies"]} >= {"commercial", "marketplace", "medicaid"}


# --------------------------------------------------------------------------------------------------
# Repeat infusion, tocilizumab allowance, concurrent CAR-T orders, out-of-scope orders
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hook_name", ["repeat-abecma-infusion-prefetch", "kite772-repeat-infusion-after-trial-prefetch"])
def test_a_repeat_infusion_is_not_continued_therapy(client, hook_name):
    hook = sandbox_hook(hook_name)
    reference = f"MedicationRequest/{draft_orders(hook)[0]['id']}"

    body = signed(client, hook)

    card = assert_verdict(body, reference, "does-not-meet")
    continued = criterion(card, "II.A.1")
    assert continued["status"] == "not-met"
    assert continued["evidence"] and all("/" in e["reference"] for e in continued["evidence"])
    assert "**II.A.1**" in card["detail"] and "II.A.1" in coverage_information(body, reference)["reason"]


def test_tocilizumab_within_the_allowance_meets_with_the_car_t_order(client):
    hook = sandbox_hook("tocilizumab-within-allowance-prefetch")

    body = signed(client, hook)

    assert len(body["cards"]) == 2
    assert_verdict(body, ABECMA_ORDER, "meets-policy")
    toci = assert_verdict(body, "MedicationRequest/tocilizumab-within-allowance-toci", "meets-policy")
    assert statuses(toci) == {"I.A.approval.tocilizumab": "met"}
    assert "tocilizumab" in toci["summary"]


@pytest.mark.parametrize(("change", "why"), [
    (lambda dosage: dosage["doseAndRate"][0]["doseQuantity"].update(value=900), "900 mg per dose"),
    (lambda dosage: dosage["timing"]["repeat"].update(count=5), "5 doses"),
])
def test_tocilizumab_beyond_the_allowance_does_not_meet_while_the_car_t_order_still_does(client, change, why):
    hook = sandbox_hook("tocilizumab-within-allowance-prefetch")
    (toci,) = [o for o in draft_orders(hook) if o["id"] == "tocilizumab-within-allowance-toci"]
    change(toci["dosageInstruction"][0])

    body = signed(client, hook)

    card = assert_verdict(body, "MedicationRequest/tocilizumab-within-allowance-toci", "does-not-meet")
    assert statuses(card) == {"I.A.approval.tocilizumab": "not-met"}, why
    assert_verdict(body, ABECMA_ORDER, "meets-policy")
    assert body["cards"][0]["indicator"] == "critical"  # the most important card first


def test_the_sandbox_tocilizumab_beyond_allowance_request(client):
    body = signed(client, sandbox_hook("tocilizumab-beyond-allowance-prefetch"))

    card = assert_verdict(body, "MedicationRequest/tocilizumab-beyond-allowance-toci", "does-not-meet")
    assert criterion(card, "I.A.approval.tocilizumab")["evidence"]


def test_two_car_t_orders_signed_together_are_concurrent_therapy(client):
    hook = abecma_meets()
    add_draft_order(hook, kite772_order_for(hook, "second-cart"))

    body = signed(client, hook)

    assert len(body["cards"]) == 2
    for order in (ABECMA_ORDER, "MedicationRequest/second-cart"):
        card = assert_verdict(body, order, "does-not-meet")
        assert statuses(card)["I.A.9"] == "not-met"
    abecma = card_for(body, ABECMA_ORDER)
    assert "MedicationRequest/second-cart" in {e["reference"] for e in criterion(abecma, "I.A.9").get("evidence", [])}
    assert {card_for(body, o)["extension"][DECISION]["policy"] for o in (ABECMA_ORDER, "MedicationRequest/second-cart")} \
        == {"CP.PHAR.481", "CP.PHAR.769"}
    check_coverage_information(body, hook["context"]["draftOrders"],
                               expected_orders=[ABECMA_ORDER, "MedicationRequest/second-cart"])


def test_an_order_out_of_scope_next_to_an_in_scope_one_gets_nothing(client):
    hook = abecma_meets()
    add_draft_order(hook, dexamethasone_draft(hook))

    body = signed(client, hook)

    assert [c["extension"][DECISION]["order"] for c in body["cards"]] == [ABECMA_ORDER]
    check_coverage_information(body, hook["context"]["draftOrders"], expected_orders=[ABECMA_ORDER])
    assert_verdict(body, ABECMA_ORDER, "meets-policy")


def test_a_request_with_no_in_scope_order_answers_no_cards_without_any_fhir_io(client, http_mock):
    hook = abecma_meets()
    hook["context"]["draftOrders"]["entry"] = [{"resource": dexamethasone_draft(hook)}]
    del hook["prefetch"]  # the record would have to come from fhirServer, were anything in scope

    body = signed(client, hook)

    assert body == {"cards": []}
    assert len(http_mock.calls) == 0


# --------------------------------------------------------------------------------------------------
# Retrieval: fallback queries, a failing query, no data at all, a refused fhirServer
# --------------------------------------------------------------------------------------------------


def test_without_prefetch_the_record_is_queried_and_gives_the_same_decision(client, http_mock):
    requested = replay_recorded(http_mock)
    hook = sandbox_hook("kite772-meets-all-criteria-no-prefetch")

    body = signed(client, hook)

    assert_verdict(body, KITE_ORDER, "meets-policy")
    assert any(key.startswith("GET Observation?") for key in requested)
    with_prefetch = signed(client, sandbox_hook("kite772-meets-all-criteria-prefetch"))
    assert statuses(card_for(body, KITE_ORDER)) == statuses(card_for(with_prefetch, KITE_ORDER))


def test_a_failing_fhir_query_makes_the_decision_indeterminate(client, http_mock):
    requested = replay_recorded(http_mock, fail=lambda key: key.startswith("GET Observation?"))
    hook = sandbox_hook("kite772-meets-all-criteria-no-prefetch")

    body = signed(client, hook)

    assert any(key.startswith("GET Observation?") for key in requested)
    card = assert_verdict(body, KITE_ORDER, "indeterminate")
    assert statuses(card)["I.A.4"] == "unknown" and criterion(card, "I.A.4").get("retrievalFailed") is True
    assert statuses(card)["I.A.3"] == "met"  # what was retrieved still counts
    assert "could not be retrieved" in card["detail"]
    assert "Documentation to submit" not in card["detail"]
    reason = coverage_information(body, KITE_ORDER)["reason"]
    assert "I.A.4" in reason


def test_no_prefetch_and_no_fhir_server_is_412(client):
    hook = sandbox_hook("kite772-meets-all-criteria-no-prefetch")
    del hook["fhirServer"]

    response = client.post(HOOK_URL, json=hook)

    assert response.status_code == 412
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "incomplete"


@pytest.mark.parametrize("server", ["http://169.254.169.254/", "https://169.254.169.254/latest/meta-data"])
def test_a_metadata_address_as_fhir_server_is_400_naming_the_field(client, http_mock, server):
    hook = sandbox_hook("kite772-meets-all-criteria-no-prefetch")
    hook["fhirServer"] = server

    response = client.post(HOOK_URL, json=hook)

    assert response.status_code == 400
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == ["fhirServer"] and "169.254" not in issue["diagnostics"]
    assert len(http_mock.calls) == 0


# --------------------------------------------------------------------------------------------------
# CRD configuration and coverage
# --------------------------------------------------------------------------------------------------


def configured(hook: dict, **options) -> dict:
    hook.setdefault("extension", {})["davinci-crd.configuration"] = options
    return hook


def test_coverage_info_false_suppresses_the_action_but_not_the_card(client):
    body = signed(client, configured(abecma_meets(), **{"coverage-info": False}), coverage=False)

    assert "systemActions" not in body
    assert card_for(body, ABECMA_ORDER)["extension"][DECISION]["verdict"] == "meets-policy"


def test_max_cards_keeps_the_most_important_card(client):
    hook = configured(sandbox_hook("tocilizumab-beyond-allowance-prefetch"), **{"max-cards": 1})

    body = signed(client, hook)

    (card,) = body["cards"]
    assert card["indicator"] == "critical"
    assert card["extension"][DECISION]["order"] == "MedicationRequest/tocilizumab-beyond-allowance-toci"


def test_unknown_configuration_codes_are_ignored(client):
    plain = signed(client, abecma_meets())
    hook = configured(abecma_meets(), **{"made-up-option": True, "coverage-info": True, "x-vendor": {"a": 1}})

    body = signed(client, hook)

    assert statuses(card_for(body, ABECMA_ORDER)) == statuses(card_for(plain, ABECMA_ORDER))
    assert coverage_information(body, ABECMA_ORDER)["covered"] == "covered"


def test_without_coverage_no_action_is_written_and_the_card_says_so(client):
    hook = abecma_meets()
    hook["prefetch"]["coverage"]["entry"] = []
    hook["prefetch"]["coverage"]["total"] = 0

    body = signed(client, hook, coverage=False)

    assert "systemActions" not in body
    card = card_for(body, ABECMA_ORDER)
    assert "coverage was not found" in card["detail"]


def test_the_coverage_used_is_the_members_and_dated_as_of(client):
    hook = abecma_meets()
    (coverage,) = prefetch_resources(hook, "coverage")

    body = signed(client, hook)

    info = coverage_information(body, ABECMA_ORDER)
    assert info["coverage"] == f"Coverage/{coverage['id']}"
    assert info["date"] == AS_OF.isoformat()
    assert info["coverage-assertion-id"]
