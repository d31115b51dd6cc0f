"""The response model writes CDS Hooks 2.0 JSON without empties and refuses what the spec forbids."""

from __future__ import annotations

import pytest

from cds_service.response.responses import (
    CARD_TYPE_SYSTEM,
    Action,
    Card,
    Coding,
    Link,
    Response,
    Source,
    Suggestion,
    SystemAction,
)
from tests.response_checks import check_response

SOURCE = Source("Example Health Plan", topic=Coding("coverage-info", CARD_TYPE_SYSTEM, "Coverage Information"))
ORDER = {"resourceType": "MedicationRequest", "id": "mr1", "status": "draft", "intent": "order",
         "medicationCodeableConcept": {"text": "a product"}, "subject": {"reference": "Patient/p1"}}


def test_empty_response_is_cards_only():
    assert Response().as_json() == {"cards": []}
    check_response(Response().as_json())


def test_minimal_card_omits_every_optional_member():
    card = Card("Prior authorization required", "info", SOURCE).as_json()

    assert set(card) == {"uuid", "summary", "indicator", "source"}
    assert card["source"] == {"label": "Example Health Plan",
                              "topic": {"code": "coverage-info", "system": CARD_TYPE_SYSTEM,
                                        "display": "Coverage Information"}}


def test_full_response_passes_the_response_checks():
    update = Action("update", "Use the weight-based dose", resource=ORDER)
    card = Card("Dose above the policy limit", "warning", SOURCE, detail="**Dose** exceeds the limit.",
                suggestions=(Suggestion("Reduce dose", actions=(update,), is_recommended=True),),
                override_reasons=(Coding("patient-declined", "https://example.org/reasons", "Patient declined"),),
                links=(Link("Policy", "https://payer.example.org/policy.pdf"),),
                extension={"org.example.note": "x"})
    body = Response(cards=(card,), system_actions=(SystemAction("update", "Coverage information", ORDER),)).as_json()

    check_response(body, draft_orders={"resourceType": "Bundle", "entry": [{"resource": ORDER}]},
                   expect_system_actions=True)
    assert body["cards"][0]["selectionBehavior"] == "at-most-one"
    assert body["cards"][0]["suggestions"][0]["uuid"] != body["cards"][0]["uuid"]


def test_uuids_are_unique_per_object():
    assert Card("A", "info", SOURCE).uuid != Card("A", "info", SOURCE).uuid


@pytest.mark.parametrize("summary", ["", "x" * 140])
def test_summary_must_be_1_to_139_characters(summary):
    with pytest.raises(ValueError, match="summary"):
        Card(summary, "info", SOURCE)


def test_summary_of_139_characters_is_accepted():
    assert len(Card("x" * 139, "info", SOURCE).as_json()["summary"]) == 139


def test_selection_behavior_is_written_only_with_suggestions():
    card = Card("A", "info", SOURCE, selection_behavior="any").as_json()
    assert "selectionBehavior" not in card


@pytest.mark.parametrize("build, message", [
    (lambda: Card("A", "hard-stop", SOURCE), "indicator"),
    (lambda: Card("A", "info", SOURCE, selection_behavior="all"), "selection_behavior"),
    (lambda: Card("A", "info", SOURCE, override_reasons=(Coding("c", "s"),)), "display"),
    (lambda: Card("A", "info", SOURCE, suggestions=(Suggestion("a", is_recommended=True),
                                                    Suggestion("b", is_recommended=True))), "recommended"),
    (lambda: Link("Policy", "/relative"), "absolute"),
    (lambda: Link("Policy", "https://x.example", app_context="ctx"), "appContext"),
    (lambda: Link("Policy", "https://x.example", type="embedded"), "type"),
    (lambda: Action("update", "", resource=ORDER), "description"),
    (lambda: Action("create", "Add it"), "resource"),
    (lambda: Action("delete", "Remove it"), "resource_id"),
    (lambda: Action("replace", "Swap", resource=ORDER), "type"),
    (lambda: Source(""), "label"),
    (lambda: Source("Plan", url="payer.example.org"), "url"),
    (lambda: Suggestion(""), "label"),
])
def test_invalid_parts_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_delete_action_uses_resource_id():
    assert Action("delete", "Remove the draft", resource_id="MedicationRequest/mr1").as_json() == {
        "type": "delete", "description": "Remove the draft", "resourceId": "MedicationRequest/mr1"}


def test_smart_link_keeps_app_context():
    link = Link("Launch", "https://app.example.org/launch", type="smart", app_context="order=1").as_json()
    assert link == {"label": "Launch", "url": "https://app.example.org/launch", "type": "smart",
                    "appContext": "order=1"}
