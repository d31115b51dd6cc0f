"""The use case's handling of what only the FHIR server can tell: a draft order that names its product
through a Medication reference outside the request."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

import pytest
import responses

from cds_service import create_app, order_sign
from tests.cds_service.conftest import HOOK_URL, protocol_settings

HOOK = Path(__file__).parents[2] / "sandbox" / "hooks" / "abecma-meets-all-criteria-prefetch.json"
MEDICATION_URL = "http://127.0.0.1:8090/fhir/Medication/abecma-product"
ABECMA = {"resourceType": "Medication", "id": "abecma-product",
          "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "2536434",
                               "display": "idecabtagene vicleucel"}]}}


@pytest.fixture
def hook_with_referenced_medication() -> dict:
    hook = json.loads(HOOK.read_text(encoding="utf-8"))
    order = hook["context"]["draftOrders"]["entry"][0]["resource"]
    order.pop("medicationCodeableConcept")
    order["medicationReference"] = {"reference": "Medication/abecma-product"}
    return hook


def test_referenced_medication_is_read_once_and_puts_the_order_in_scope(
    hook_with_referenced_medication, http_mock, monkeypatch
):
    guard_calls = []
    real_guard = order_sign.check_fhir_server
    monkeypatch.setattr(order_sign, "check_fhir_server", lambda *a, **kw: guard_calls.append(1) or real_guard(*a, **kw))
    http_mock.add(responses.GET, MEDICATION_URL, json=copy.deepcopy(ABECMA))
    client = create_app(protocol_settings(allow_loopback_fhir=True), as_of=date(2026, 11, 24)).test_client()

    body = client.post(HOOK_URL, json=hook_with_referenced_medication).get_json()

    [card] = body["cards"]
    assert card["extension"]["cart-cds.decision"]["policy"] == "CP.PHAR.481"
    assert len([c for c in http_mock.calls if c.request.url == MEDICATION_URL]) == 1
    assert guard_calls == [1], "the fhirServer guard runs once per call"


def test_each_worker_keeps_a_connection_pool_for_a_full_wave_per_thread():
    service = order_sign.OrderSignService.from_settings(protocol_settings(fhir_max_workers=16, threads=4))
    adapter = service.session.get_adapter("https://ehr.example.org/fhir")
    assert adapter._pool_maxsize == 64  # 4 concurrent hooks x 16 parallel queries, none thrown away
