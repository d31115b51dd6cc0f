"""CRD configuration options change what a real decision returns (dev-4, dev-5, dev-14, dev-17).

Runs a sandbox scenario that meets its policy (one Abecma order with Coverage) through the service with
different ``davinci-crd.configuration`` values."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from cds_service import create_app
from cds_service.discovery import discovery_document
from tests.cds_service.conftest import HOOK_URL, protocol_settings
from tests.response_checks import check_response

HOOK = Path(__file__).parents[2] / "sandbox" / "hooks" / "abecma-meets-all-criteria-prefetch.json"


@pytest.fixture(scope="module")
def client():
    return create_app(protocol_settings(allow_loopback_fhir=True), as_of=date(2026, 11, 24)).test_client()


def call(client, configuration: dict | None) -> dict:
    hook = json.loads(HOOK.read_text(encoding="utf-8"))
    if configuration is not None:
        hook["extension"] = {"davinci-crd.configuration": configuration}
    response = client.post(HOOK_URL, json=hook)
    assert response.status_code == 200
    body = response.get_json()
    check_response(body, hook="order-sign", draft_orders=hook["context"]["draftOrders"])
    return body


def test_every_card_type_returned_has_a_boolean_option_named_by_its_code():
    service = discovery_document()["services"][0]  # order-dispatch declares the same options
    booleans = {o["code"] for o in service["extension"]["davinci-crd.configuration-options"] if o["type"] == "boolean"}
    assert {"coverage-info", "guideline"} <= booleans


def test_defaults_return_the_card_and_the_coverage_action(client):
    body = call(client, None)
    assert [c["source"]["topic"]["code"] for c in body["cards"]] == ["guideline"]
    assert len(body["systemActions"]) == 1


def test_guideline_false_returns_only_the_coverage_action(client):
    body = call(client, {"guideline": False})
    assert body["cards"] == [] and len(body["systemActions"]) == 1


def test_coverage_info_false_returns_only_the_card(client):
    body = call(client, {"coverage-info": False})
    assert len(body["cards"]) == 1 and "systemActions" not in body


def test_max_cards_zero_and_unknown_codes(client):
    body = call(client, {"max-cards": 0, "alt-drug": True, "dtr-clin": False})
    assert body["cards"] == [] and len(body["systemActions"]) == 1
