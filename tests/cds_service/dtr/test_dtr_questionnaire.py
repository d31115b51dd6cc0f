"""Questionnaires generated from the policy model: valid R4B and DTR, deterministic, one group per
criterion in the policy's words, and FHIRPath that a real client evaluates as intended (fhirpathpy)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from dtr_fixtures import BASE, all_policies, leaf, tiny_policy
from fhir.resources.R4B.questionnaire import Questionnaire
from fhirpathpy import evaluate
from fhirpathpy.models import models

from cds_service.dtr.questionnaire import questionnaire, questionnaires, satisfied_expression
from policies.loader import shipped_policies
from tests.dtr_checks import check_questionnaire, expressions, questionnaire_problems, walk_items

ENABLE_WHEN = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-enableWhenExpression"
INITIAL = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-initialExpression"


def items_by_link(q: dict) -> dict[str, dict]:
    return {item["linkId"]: item for item, _ in walk_items(q["item"])}


def fhirpath(target: dict, expression: str, **variables):
    """``expression`` evaluated by fhirpathpy on ``target`` with the R4 model, as a FHIR client would."""
    return evaluate(target, expression, variables, models["r4"])


def response(answers: dict[str, bool]) -> dict:
    """A QuestionnaireResponse with ``<id>.met`` answers, nested under a group the way forms nest them."""
    items = [{"linkId": link, "answer": [{"valueBoolean": value}]} for link, value in answers.items()]
    return {"resourceType": "QuestionnaireResponse", "status": "in-progress",
            "item": [{"linkId": "root", "item": [{"linkId": "inner", "item": items}]}]}


@pytest.mark.parametrize("policy", all_policies(), ids=lambda p: p.id)
def test_every_policy_yields_a_valid_dtr_questionnaire(policy):
    q = questionnaire(policy, BASE)
    Questionnaire.model_validate(q)
    check_questionnaire(q)
    assert q["url"] == f"{BASE}/Questionnaire/{q['id']}"
    assert re.fullmatch(re.escape(policy.version) + r"-[0-9a-f]{8}", q["version"])


def test_canonical_slug_and_effective_period_come_from_the_policy():
    q = questionnaires(shipped_policies(), BASE + "/")
    assert q["CP.PHAR.481"]["url"] == "https://payer.example/fhir/Questionnaire/cp-phar-481"
    assert q["CP.PHAR.769"]["url"] == "https://payer.example/fhir/Questionnaire/cp-phar-769"
    assert q["CP.PHAR.481"]["effectivePeriod"] == {"start": "2026-05"}
    assert q["CP.PHAR.481"]["name"] == "CPPHAR481"


@pytest.mark.parametrize("policy", all_policies(), ids=lambda p: p.id)
def test_one_group_per_criterion_in_the_policys_words(policy):
    items = items_by_link(questionnaire(policy, BASE))
    asked = [c for root in policy.required for c in root.walk()]
    assert {i["linkId"] for i in items.values() if i["type"] == "group"} == {c.id for c in asked}
    for criterion in asked:
        group = items[criterion.id]
        assert (group["prefix"], group["text"]) == (criterion.id, criterion.text)
        if criterion.check:
            assert items[f"{criterion.id}.met"]["type"] == "boolean"
            assert items[f"{criterion.id}.evidence"]["type"] == "text"
            if criterion.documentation:
                assert criterion.documentation in items[f"{criterion.id}.evidence"]["text"]
    assert policy.tocilizumab.id not in items


def test_sections_two_and_three_are_asked_and_exclusions_say_what_met_means():
    policy = shipped_policies()[0]
    q = questionnaire(policy, BASE)
    assert [i["linkId"] for i in q["item"]] == ["I.A", "II.A.1", "III.A", "III.B"]
    items = items_by_link(q)
    assert "clear of this exclusion" in items["III.B.met"]["text"]
    assert items["III.A.evidence"]["text"]  # no documentation in the file: a generic prompt, never empty
    assert items["II.A.1.met"]["text"] == "Is this criterion met?"


def test_generation_is_deterministic_and_the_version_follows_the_content():
    policy = tiny_policy()
    first, second = questionnaire(policy, BASE), questionnaire(policy, BASE)
    assert first == second
    edited = replace(policy, continued=leaf("2", "Continued therapy is authorized once", "no_prior_dose"))
    assert questionnaire(edited, BASE)["version"] != first["version"]
    assert questionnaire(replace(policy, title="Renamed"), BASE)["version"] != first["version"]


def test_questions_under_any_and_n_of_groups_are_optional_others_required():
    items = items_by_link(questionnaire(tiny_policy(), BASE))
    assert items["1.a.met"]["required"] is True
    assert items["2.met"]["required"] is True and items["3.met"]["required"] is True
    assert items["1.c.met"]["required"] is True  # the n_of group's own check is not under a choice
    for link in ("1.b.1.x.met", "1.b.1.y.met", "1.b.2.met", "1.c.p.met", "1.c.q.met"):
        assert "required" not in items[link]
    shipped = items_by_link(questionnaire(shipped_policies()[0], BASE))
    assert "required" not in shipped["I.A.4.a.ii.met"] and shipped["I.A.10.met"]["required"] is True


def test_only_ehr_facts_carry_an_initial_expression_and_they_evaluate_with_fhirpath():
    for policy in all_policies():
        q = questionnaire(policy, BASE)
        with_initial = [item["linkId"] for item, _ in walk_items(q["item"])
                        if any(e["url"] == INITIAL for e in item.get("extension", ()))]
        assert all(link.endswith(".fact") for link in with_initial)
        for link in with_initial:
            assert items_by_link(q)[link]["type"] == "date"
    q = questionnaire(tiny_policy(), BASE)
    (expression,) = [e["expression"] for url, e in expressions(q) if url == INITIAL]
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1961-11-11"}
    assert fhirpath({}, expression, patient=patient) == ["1961-11-11"]
    assert fhirpath({}, expression, patient={"resourceType": "Patient", "id": "p2"}) == []


def enable_expression(q: dict, link: str) -> str | None:
    item = items_by_link(q)[link]
    found = [e["valueExpression"]["expression"] for e in item.get("extension", ()) if e["url"] == ENABLE_WHEN]
    return found[0] if found else None


def enabled(q: dict, link: str, answers: dict[str, bool]) -> bool:
    qr = response(answers)
    result = fhirpath(qr, enable_expression(q, link), resource=qr)
    assert result in ([True], [False])
    return result == [True]


def test_any_branch_is_enabled_only_while_no_earlier_branch_is_answered_met():
    q = questionnaire(tiny_policy(), BASE)
    assert enable_expression(q, "1.b.1") is None  # the first branch is always shown
    assert enabled(q, "1.b.2", {})
    assert enabled(q, "1.b.2", {"1.b.1.x.met": True})  # an all-branch needs both parts
    assert not enabled(q, "1.b.2", {"1.b.1.x.met": True, "1.b.1.y.met": True})
    assert enabled(q, "1.b.2", {"1.b.1.x.met": True, "1.b.1.y.met": False})


def test_shipped_any_groups_chain_their_branches():
    q = questionnaire(shipped_policies()[0], BASE)
    assert enable_expression(q, "I.A.4.a") is None
    assert enabled(q, "I.A.4.a.iii", {"I.A.4.a.i.met": False, "I.A.4.a.ii.met": False})
    assert not enabled(q, "I.A.4.a.iii", {"I.A.4.a.ii.met": True})
    assert not enabled(q, "I.A.4.b", {"I.A.4.a.iii.met": True})
    assert enabled(q, "I.A.4.b", {"I.A.4.a.i.met": False})


@pytest.mark.parametrize("answers, expected", [
    ({}, False), ({"1.c.met": True}, False), ({"1.c.met": True, "1.c.p.met": True}, False),
    ({"1.c.met": True, "1.c.p.met": True, "1.c.r.met": True}, True),
    ({"1.c.p.met": True, "1.c.r.met": True}, False),  # the group's own check must hold as well
    ({"1.c.met": True, "1.c.p.met": True, "1.c.q.met": False, "1.c.r.met": True}, True),
])
def test_satisfied_expression_follows_n_of_and_the_groups_own_check(answers, expected):
    qr = response(answers)
    assert fhirpath(qr, satisfied_expression(tiny_policy().initial.children[2]), resource=qr) == [expected]


@pytest.mark.parametrize("policy", all_policies(), ids=lambda p: p.id)
def test_every_emitted_expression_evaluates_to_one_boolean_or_a_fact_on_an_empty_response(policy):
    q = questionnaire(policy, BASE)
    qr = response({})
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}
    for url, expr in expressions(q):
        assert expr["language"] == "text/fhirpath"
        result = fhirpath(qr, expr["expression"], resource=qr, patient=patient)
        assert result == ([True] if url == ENABLE_WHEN else ["1970-01-01"]), expr["expression"]


def test_a_criterion_id_quote_is_escaped_in_fhirpath():
    policy = replace(tiny_policy(), exclusions=(leaf("3'x", "Odd id", "odd"),))
    q = questionnaire(policy, BASE)
    qr = response({"3'x.met": True})
    assert fhirpath(qr, satisfied_expression(policy.exclusions[0]), resource=qr) == [True]
    assert questionnaire_problems(q) == []


def test_colliding_link_ids_are_refused():
    policy = tiny_policy()
    clash = replace(policy, exclusions=(leaf("2.met", "Clash", "odd"),))
    with pytest.raises(ValueError, match="linkId '2.met' twice"):
        questionnaire(clash, BASE)


def test_checks_catch_what_the_r4b_model_accepts():
    q = questionnaire(tiny_policy(), BASE)
    broken = items_by_link(q)
    broken["1.a.met"]["type"] = "coding"  # R5 only
    del broken["1.b"]["text"]
    broken["1.c.p.met"]["readOnly"] = True
    broken["1.a.fact"]["readOnly"] = True
    Questionnaire.model_validate({**q, "item": q["item"]})
    problems = questionnaire_problems(q)
    assert any("not an R4 item type" in p for p in problems)
    assert any("1.b: text is required" in p for p in problems)
    assert any("1.a.fact: an item filled from the EHR" in p for p in problems)
    assert not any("1.c.p.met" in p for p in problems)


def test_the_version_does_not_depend_on_where_the_form_is_served():
    policy = tiny_policy()
    here, there = questionnaire(policy, BASE), questionnaire(policy, "https://other.example/dtr")
    assert here["url"] != there["url"] and here["version"] == there["version"]
