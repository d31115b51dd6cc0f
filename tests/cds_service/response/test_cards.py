"""Cards rendered from policy decisions: what a clinician reads, and what an EHR machine-reads."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.response.cards import CardSettings, CriteriaTree, card_decision, decision_card, decision_cards
from cds_service.response.coverage_information import coverage_information_actions
from cds_service.response.markdown_text import escape
from fhir_mappings.facts import Evidence
from policies.decision import CriterionResult, PolicyDecision, Referral, ReferralPolicy, Status, Verdict
from tests.cds_service import decision_examples as ex
from tests.crd_checks import coverage_information_problems

PAYER = CardSettings("Example Health Plan", {"CP.PHAR.481": "https://www.example-health.com/policies/cp-phar-481.pdf"})
CARD_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/cdshooks-card-type"


def card_json(decision: PolicyDecision, settings: CardSettings) -> dict:
    return decision_card(decision, settings).as_json()


def cards_json(decisions, settings: CardSettings, max_cards: int | None = None) -> list[dict]:
    return [card.as_json() for card in decision_cards(decisions, settings, max_cards)]


def card_problems(card: dict) -> list[str]:
    """The structural rules every card must pass (CDS Hooks 2.0 + CRD)."""
    problems = []
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary.strip() or len(summary) >= 140:
        problems.append(f"summary {summary!r}: non-empty and < 140 characters")
    if card.get("indicator") not in ("info", "warning", "critical"):
        problems.append("indicator")
    if not re.fullmatch(r"[0-9a-f-]{36}", card.get("uuid", "")):
        problems.append("uuid")
    source = card.get("source", {})
    if not source.get("label") or source.get("topic", {}).get("system") != CARD_TYPE_SYSTEM or not source["topic"].get("code"):
        problems.append("source.label and source.topic {system, code}")
    if "<" in card.get("detail", "") or ">" in card.get("detail", ""):
        problems.append("detail contains HTML")
    for link in card.get("links", []):
        if link.get("type") != "absolute" or not link.get("url", "").startswith(("https://", "http://")) or not link.get("label"):
            problems.append("link")

    def empties(value, path):
        if value is None or value == "" or value == [] or value == {}:
            problems.append(f"{path}: null or empty")
        elif isinstance(value, dict):
            for key, child in value.items():
                empties(child, f"{path}.{key}")
        elif isinstance(value, list):
            for index, child in enumerate(value):
                empties(child, f"{path}[{index}]")

    empties(card, "card")
    return problems


def test_summary_names_product_and_verdict_for_each_verdict():
    expected = {
        ex.abecma_meets: ("info", "Abecma (idecabtagene vicleucel): meets CP.PHAR.481 criteria -- prior auth with "
                                  "documentation still required"),
        ex.kite_does_not_meet: ("critical", "KITE-772 (anitocabtagene autoleucel): does not meet CP.PHAR.769 -- "
                                            "2 criteria not met"),
        ex.abecma_other_diagnosis: ("critical", "Abecma (idecabtagene vicleucel): does not meet CP.PHAR.481 -- "
                                                "1 criterion not met"),
        ex.abecma_incomplete: ("warning", "Abecma (idecabtagene vicleucel): documentation incomplete for "
                                          "CP.PHAR.481 -- 2 items to submit"),
        ex.kite_indeterminate: ("warning", "KITE-772 (anitocabtagene autoleucel): CP.PHAR.769 check incomplete -- "
                                           "part of the record could not be retrieved"),
    }
    for build, (indicator, summary) in expected.items():
        card = card_json(build(), PAYER)
        assert (card["indicator"], card["summary"]) == (indicator, summary)
        assert card_problems(card) == []


def test_every_card_carries_the_machine_readable_decision_and_its_order():
    decision = ex.kite_does_not_meet()
    card = card_json(decision, PAYER)
    assert card["extension"]["cart-cds.decision"] == decision.as_extension()
    assert card["extension"]["davinci-crd.associated-resource"] == [{"reference": "MedicationRequest/kite-1"}]
    assert card["source"] == {"label": "Example Health Plan", "topic": {
        "system": CARD_TYPE_SYSTEM, "code": "guideline", "display": "Guideline"}}
    json.dumps(card)  # plain JSON


def test_the_decision_is_read_back_from_a_card_as_it_was_written():
    decision = ex.kite_does_not_meet()
    assert card_decision(card_json(decision, PAYER)) == decision.as_extension()


@pytest.mark.parametrize("card", [{"summary": "no extension"}, {"extension": {"other": {}}},
                                  {"extension": {"cart-cds.decision": "not an object"}}, "not a card"])
def test_a_card_without_a_decision_object_reads_as_none(card):
    assert card_decision(card) is None


def test_does_not_meet_lists_each_not_met_criterion_with_policy_words_and_evidence_first():
    decision = ex.kite_does_not_meet()
    detail = card_json(decision, PAYER)["detail"]
    not_met = [c for c in decision.criteria if c.status is Status.NOT_MET and c.id != "I.A"]
    assert {c.id for c in not_met} == {"I.A.4", "I.A.4.a", "I.A.4.a.i", "I.A.4.b", "I.A.9"}
    for c in not_met:
        assert f"**{escape(c.id)}** {escape(c.text)}" in detail
        assert escape(c.reason) in detail
        for e in c.evidence:
            for part in (e.reference, e.value, e.unit, e.date):
                if part:
                    assert escape(part) in detail
    # most actionable first: the not-met list comes before what is merely not shown
    assert detail.index("**Not met**") < detail.index("**Also not shown in the record**")
    assert detail.index("I.A.9") < detail.index("I.A.6")
    # the met criteria are not presented as problems
    assert "I.A.10" not in detail.split("**Also not shown")[0]


def test_other_diagnosis_names_the_referral_policy_for_the_members_line_of_business():
    detail = card_json(ex.abecma_other_diagnosis("medicaid"), PAYER)["detail"]
    assert "Medicaid: **CP.PMN.53** (off-label use policy)" in detail
    assert "CP.CPA.09" not in detail and "HIM.PA.154" not in detail
    assert escape("C83.30 Diffuse large B-cell lymphoma") in detail
    unknown_line = card_json(ex.abecma_other_diagnosis(None), PAYER)["detail"]
    for policy in ("CP.CPA.09", "HIM.PA.154", "CP.PMN.53"):
        assert f"**{policy}**" in unknown_line


def test_documentation_incomplete_is_a_checklist_one_line_per_unknown_criterion():
    decision = ex.abecma_incomplete()
    detail = card_json(decision, PAYER)["detail"]
    checklist = [line for line in detail.splitlines() if line.startswith("- [ ] ")]
    assert len(checklist) == 2
    assert checklist[0].startswith("- [ ] **I.A.4** " + escape(ex.DOCUMENTATION["I.A.4"]))
    assert checklist[1].startswith("- [ ] **I.A.5** " + escape(ex.DOCUMENTATION["I.A.5"]))
    assert "meets" not in detail.lower()


def test_indeterminate_names_what_could_not_be_retrieved_and_never_claims_missing_documentation():
    card = card_json(ex.kite_indeterminate(), PAYER)
    detail = card["detail"]
    assert "documentation" not in detail.lower() and "missing" not in detail.lower()
    assert "documentation" not in card["summary"].lower()
    assert "clinical judgement" in detail and "pending" in detail
    for cid, reason in (("I.A.1", "Condition search failed (http-5xx)"), ("I.A.4", "Observation search failed (timeout)"),
                        ("III.B", "Condition search failed (http-5xx)")):
        assert re.search(rf"\*\*{re.escape(escape(cid))}\*\* .*{re.escape(escape(reason))}", detail)


def test_indeterminate_keeps_criteria_not_shown_apart_from_those_not_retrieved():
    decision = ex.kite_indeterminate()
    extra = ex.criterion("I.A.9", Status.UNKNOWN, "No current medication list")
    decision = replace(decision, criteria=tuple(extra if c.id == "I.A.9" else c for c in decision.criteria))
    detail = card_json(decision, PAYER)["detail"]
    retrieved, still = detail.split("**Still to be assessed**")
    assert "I.A.9" not in retrieved and "**I.A.9**" in still


def test_meets_policy_states_the_approval_terms_prior_authorization_and_evidence():
    detail = card_json(ex.abecma_meets(), PAYER)["detail"]
    for phrase in ("3 months", "Doses: 1", "up to 4 doses, at most 800 mg per dose", "PDAC", "Prior authorization",
                   "Q2055"):
        assert phrase in detail
    for evidence in (ex.M_PROTEIN, ex.AGE.evidence[0], ex.DOSE.evidence[0]):
        assert escape(evidence.reference) in detail and escape(evidence.value) in detail
    # an unknown alternative inside a met "any" group is not evidence of anything
    assert "I.A.4.b" not in detail


def test_tocilizumab_order_gets_its_own_card():
    within = card_json(ex.tocilizumab(Status.MET, "800", "4"), PAYER)
    beyond = card_json(ex.tocilizumab(Status.NOT_MET, "1000", "4"), PAYER)
    assert within["summary"].startswith("Tocilizumab (Actemra): meets CP.PHAR.481")
    assert beyond["summary"] == "Tocilizumab (Actemra): does not meet CP.PHAR.481 -- 1 criterion not met"
    assert beyond["indicator"] == "critical"
    assert "1000 mg" in beyond["detail"]
    assert beyond["extension"]["davinci-crd.associated-resource"] == [{"reference": "MedicationRequest/toci-1"}]


def test_policy_link_only_when_an_absolute_url_is_configured():
    assert card_json(ex.abecma_meets(), PAYER)["links"] == [{
        "label": "CP.PHAR.481 policy: Idecabtagene Vicleucel (Abecma)",
        "url": "https://www.example-health.com/policies/cp-phar-481.pdf", "type": "absolute"}]
    assert "links" not in card_json(ex.kite_does_not_meet(), PAYER)
    relative = CardSettings("Example Health Plan", {"CP.PHAR.481": "/policies/481.pdf"})
    assert "links" not in card_json(ex.abecma_meets(), relative)


def test_missing_coverage_is_said_on_the_card():
    card = card_json(replace(ex.abecma_incomplete(), coverage=None), PAYER)
    paragraphs = card["detail"].split("\n\n")
    assert paragraphs[1].startswith("**Coverage not found:**")
    assert "Coverage not found" not in card_json(ex.abecma_incomplete(), PAYER)["detail"]


def test_max_cards_keeps_the_most_important():
    decisions = [ex.abecma_meets(), ex.abecma_incomplete(), ex.kite_does_not_meet(), ex.tocilizumab(Status.MET, "800", "4")]
    assert [c["indicator"] for c in cards_json(decisions, PAYER)] == ["critical", "warning", "info", "info"]
    kept = cards_json(decisions, PAYER, max_cards=2)
    assert [c["extension"]["cart-cds.decision"]["order"] for c in kept] == ["MedicationRequest/kite-1",
                                                                          "MedicationRequest/abecma-1"]
    assert [c["indicator"] for c in kept] == ["critical", "warning"]
    assert cards_json(decisions, PAYER, max_cards=0) == []
    assert len({c["uuid"] for c in cards_json(decisions, PAYER)}) == 4


def test_text_from_the_record_renders_inert():
    hostile = "[link](javascript:alert(1)) <script>alert(1)</script> ![x](http://evil.example/p.png)"
    decision = replace(ex.kite_does_not_meet(), product=hostile)
    evil_evidence = Evidence("MedicationRequest/x", "medicationCodeableConcept", hostile, "<b>", "2026-11-20")
    decision = replace(decision, criteria=tuple(
        replace(c, evidence=(evil_evidence,)) if c.id == "I.A.9" else c for c in decision.criteria))
    card = card_json(decision, PAYER)
    assert "<" not in card["detail"] and ">" not in card["detail"]
    assert "](" not in card["detail"] and "[link]" not in card["detail"]
    assert escape(hostile) in card["detail"]
    assert len(card["summary"]) < 140 and "\n" not in card["summary"]


def test_a_meets_claim_without_met_criteria_is_not_shown_as_met():
    claims_meets = replace(ex.abecma_incomplete(), verdict=Verdict.MEETS_POLICY)
    card = card_json(claims_meets, PAYER)
    assert card["indicator"] == "warning"
    assert "meets" not in card["summary"] and "meets" not in card["detail"]
    assert card["extension"]["cart-cds.decision"]["verdict"] == "documentation-incomplete"
    hollow_group = replace(ex.abecma_meets(), criteria=(
        CriterionResult("I.A", "Section I.A", Status.MET, "met", children=("I.A.1",)),
        CriterionResult("I.A.1", "Diagnosis", Status.UNKNOWN, "not shown")))
    assert card_json(hollow_group, PAYER)["indicator"] == "warning"
    nothing_evaluated = replace(ex.abecma_meets(), criteria=())
    assert card_json(nothing_evaluated, PAYER)["indicator"] == "warning"


# --------------------------------------------------------------------------------------------------
# Generated decisions: the renderer never says "meets" unless every required criterion is met
# --------------------------------------------------------------------------------------------------

WORDS = st.text(min_size=1, max_size=60).filter(lambda t: t.strip() and "meet" not in t.lower())
EVIDENCE = st.builds(Evidence, st.from_regex(r"(Observation|Condition|MedicationRequest)/[a-z0-9-]{1,12}", fullmatch=True),
                     WORDS, st.none() | WORDS, st.none() | WORDS, st.none() | st.dates().map(date.isoformat))


@st.composite
def decisions(draw) -> PolicyDecision:
    criteria: list[CriterionResult] = []

    def node(cid: str, depth: int) -> None:
        child_ids = tuple(f"{cid}.{i}" for i in range(draw(st.integers(0, 3 if depth < 2 else 0))))
        status = draw(st.sampled_from(Status))
        criteria.append(CriterionResult(
            cid, draw(WORDS), status, draw(WORDS), tuple(draw(st.lists(EVIDENCE, max_size=2))),
            retrieval_failed=status is Status.UNKNOWN and draw(st.booleans()),
            documentation=draw(st.none() | WORDS), children=child_ids))
        for child in child_ids:
            node(child, depth + 1)

    for root in range(draw(st.integers(0, 4))):
        node(f"R{root}", 0)
    referral = draw(st.none() | st.builds(Referral, WORDS, st.lists(st.builds(
        ReferralPolicy, st.sampled_from(["commercial", "marketplace", "ichra", "medicaid"]),
        st.sampled_from(["off-label", "non-formulary", "no-coverage-criteria"]), WORDS), max_size=3).map(tuple)))
    return replace(
        ex.abecma(draw(st.sampled_from(Verdict)), criteria),
        product=draw(WORDS), referral=referral,
        coverage=draw(st.none() | st.just("Coverage/cov-1")),
        line_of_business=draw(st.none() | st.sampled_from(["commercial", "medicaid"])),
    )


@settings(max_examples=300, deadline=None)
@given(decisions())
def test_generated_cards_never_say_meets_unless_every_required_criterion_is_met(decision):
    card = card_json(decision, PAYER)
    assert card_problems(card) == []
    tree = CriteriaTree(decision.criteria)
    required_met = bool(tree.roots) and all(r.status is Status.MET for r in tree.roots)
    shown_as_met = card["indicator"] == "info"
    says_meets = "meets" in card["summary"].lower() or "meets" in card["detail"].lower()
    assert shown_as_met == says_meets == (card["extension"]["cart-cds.decision"]["verdict"] == "meets-policy")
    if decision.verdict is not Verdict.MEETS_POLICY or not required_met:
        assert not says_meets
    action = [a.as_json() for a in coverage_information_actions([decision], ex.draft_orders(), date(2026, 11, 24))]
    assert len(action) == (decision.coverage is not None)
    if action:
        assert coverage_information_problems({"systemActions": action}, ex.draft_orders()) == []
        covered = next(e["valueCode"] for e in action[0]["resource"]["extension"][-1]["extension"] if e["url"] == "covered")
        assert (covered == "covered") == shown_as_met


def test_does_not_meet_keeps_retrieval_failures_apart_from_what_the_record_does_not_show():
    failed = ex.criterion("III.B", Status.UNKNOWN, "Condition search failed (http-5xx)", retrieval_failed=True)
    decision = replace(ex.kite_does_not_meet(), criteria=tuple(
        failed if c.id == "III.B" else c for c in ex.kite_does_not_meet().criteria))
    detail = card_json(decision, PAYER)["detail"]
    not_retrieved = detail.split("**Could not be assessed (record not retrieved)**")[1].split("**Also not shown")[0]
    assert "**III.B**" in not_retrieved and escape("Condition search failed (http-5xx)") in not_retrieved
    assert "**I.A.6**" in detail.split("**Also not shown in the record**")[1]


def test_tocilizumab_approval_terms_are_the_allowance():
    detail = card_json(ex.tocilizumab(Status.MET, "800", "4"), PAYER)["detail"]
    assert "- Tocilizumab: up to 4 doses, at most 800 mg per dose" in detail
    assert "Doses: 1" not in detail
    assert "Q2055" not in detail, "the CAR-T product's billing code does not bill tocilizumab"


def test_evidence_lines_show_only_the_parts_the_record_has():
    """Value and unit, value alone, unit alone, neither; a blank part counts as absent."""
    evidence = (
        Evidence("Observation/spep-11", "valueQuantity", "1.2", "g/dL", "2026-11-10"),
        Evidence("MedicationRequest/toci-1", "dosageInstruction[0].timing.repeat.count", "4"),
        Evidence("Observation/flc-3", "valueQuantity", " \n", "mg/L", "2026-11-09"),
        Evidence("Patient/pat-1", "birthDate", "", None, "\t"),
    )
    decision = replace(ex.abecma_meets(), criteria=tuple(
        replace(c, evidence=evidence) if c.id == "I.A.3" else c for c in ex.abecma_meets().criteria))
    detail = card_json(decision, PAYER)["detail"]
    item = detail.split("- **I.A.3**")[1].split("\n- **")[0]
    assert item.splitlines()[2:] == [
        "  - Observation/spep-11 (valueQuantity): 1.2 g/dL, 2026-11-10",
        "  - MedicationRequest/toci-1 (dosageInstruction\\[0\\].timing.repeat.count): 4",
        "  - Observation/flc-3 (valueQuantity): mg/L, 2026-11-09",
        "  - Patient/pat-1 (birthDate)",
    ]


def test_evidence_shared_by_criteria_is_shown_under_each_of_them():
    """The same Observation backs I.A.4.a and I.A.4.a.i: both items show it, escaped the same way."""
    shared = Evidence("Observation/spep-[11]", "valueQuantity", "1.2", "g/dL", "2026-11-10")
    decision = replace(ex.abecma_meets(), criteria=tuple(
        replace(c, evidence=(shared,)) if c.id in ("I.A.4.a", "I.A.4.a.i") else c for c in ex.abecma_meets().criteria))
    detail = card_json(decision, PAYER)["detail"]
    line = "Observation/spep-\\[11\\] (valueQuantity): 1.2 g/dL, 2026-11-10"
    assert detail.count(line) == 2
    assert "    - **I.A.4.a.i**" in detail.split(line)[1], "the parent's evidence comes before the nested child"
