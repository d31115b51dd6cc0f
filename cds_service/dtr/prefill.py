"""The draft QuestionnaireResponse of a DTR package, prefilled from the decision the hook already made.

The clinician answers only what the record did not show (DTR spec-40: reuse the CRD data; oper-19: the
payer may prefill). Per criterion with a check of its own (docs/dtr.md, dtr.md §9):

| decision | ``<id>.met`` | ``<id>.evidence`` |
| --- | --- | --- |
| met | ``true`` | the reason and the FHIR elements behind it |
| not met | ``false`` | the reason and the FHIR elements behind it |
| unknown, record could not be retrieved | no answer | "could not be retrieved" and why: not "missing" |
| unknown, not shown | no answer | only the values found but not usable, if any |

Every answer carries ``information-origin`` ``auto-server`` (DTR 2.2 spec-65; the clinician's edit
makes it ``override``). A criterion that is also a group (a check of its own plus parts) stores only the
combined status, so its own status is used only where the combination proves it
(``policies.engine.own_result``); otherwise its question is left to the clinician and only the values
found are cited: in doubt, never met.

The response follows DTR 2.2 ``dtr-questionnaireresponse``: ``questionnaire`` = ``url|version``,
``subject`` the patient, ``qr-coverage``, ``qr-context`` (the orders), ``intendedUse`` ``withpa``, status
``in-progress``, and ``identifier`` = the CRD ``coverage-assertion-id`` it was prefilled from. The CRD
coverage-information itself is never echoed (DTR spec-154: the EHR copies a QR's assertion onto the
orders). Items follow the Questionnaire's nesting; items without an answer are left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from cds_service.dtr.questionnaire import evidence_link, met_link
from fhir_mappings import Evidence
from policies import LeafResult, Policy, PolicyDecision, Status, own_result

DTR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/"
DTR_QUESTIONNAIRE_RESPONSE = DTR + "dtr-questionnaireresponse"
QR_COVERAGE_URL = DTR + "qr-coverage"
QR_CONTEXT_URL = DTR + "qr-context"
INTENDED_USE_URL = DTR + "intendedUse"
INFORMATION_ORIGIN_URL = DTR + "information-origin"
CRD_COVERAGE_INFORMATION_CODES = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverage-information-codes"
ASSERTION_ID_SYSTEM = "urn:cart-cds:coverage-assertion-id"
AUTO_SERVER = "auto-server"


@dataclass(frozen=True)
class DraftContext:
    """Who and what a draft response is about: EHR-relative references (``Type/id``) as the hook saw them."""

    patient: str  # "Patient/abc"
    coverage: str  # "Coverage/abc"
    orders: tuple[str, ...]  # "MedicationRequest/abc"
    assertion_id: str | None = None  # the CRD coverage-assertion-id the prefill comes from


def draft_response(questionnaire: dict, context: DraftContext, authored: datetime,
                   policy: Policy | None = None, decision: PolicyDecision | None = None) -> dict:
    """The draft QuestionnaireResponse for ``questionnaire``: answers from ``decision`` (evaluated under
    ``policy``, the policy the questionnaire was generated from) when given, else no answers."""
    answers = _answers(policy, decision) if policy is not None and decision is not None else {}
    extensions = [{"url": QR_COVERAGE_URL, "valueReference": {"reference": context.coverage}}]
    extensions += [{"url": QR_CONTEXT_URL, "valueReference": {"reference": order}} for order in context.orders]
    extensions.append({"url": INTENDED_USE_URL, "valueCodeableConcept": {
        "coding": [{"system": CRD_COVERAGE_INFORMATION_CODES, "code": "withpa"}]}})
    response = {
        "resourceType": "QuestionnaireResponse",
        "meta": {"profile": [DTR_QUESTIONNAIRE_RESPONSE]},
        "extension": extensions,
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "in-progress",
        "subject": {"reference": context.patient},
        "authored": authored.isoformat(timespec="seconds"),
    }
    if context.assertion_id:
        response["identifier"] = {"system": ASSERTION_ID_SYSTEM, "value": context.assertion_id}
    items = list(_answered(questionnaire.get("item", ()), answers))
    if items:
        response["item"] = items
    return response


def _answered(items, answers: Mapping[str, dict]) -> Iterator[dict]:
    """The response items for ``items``: answered questions, and groups holding one."""
    for item in items:
        if item.get("type") == "group":
            inner = list(_answered(item.get("item", ()), answers))
            if inner:
                yield {"linkId": item["linkId"], "item": inner}
        elif item["linkId"] in answers:
            yield {"linkId": item["linkId"], "answer": [answers[item["linkId"]]]}


def _answers(policy: Policy, decision: PolicyDecision) -> dict[str, dict]:
    """linkId -> the prefilled answer, for every criterion of ``policy`` the decision evaluated."""
    results = {c.id: c for c in decision.criteria}
    answers = {}
    for root in policy.required:
        for node in root.walk():
            result = results.get(node.id)
            if node.check is None or result is None:
                continue
            own = own_result(node, results)
            if own is not None and own.status is not Status.UNKNOWN:
                answers[met_link(node.id)] = _answer("valueBoolean", own.status is Status.MET)
            text = evidence_answer(own, result.evidence)
            if text:
                answers[evidence_link(node.id)] = _answer("valueString", text)
    return answers


def evidence_answer(own: LeafResult | None, evidence: tuple[Evidence, ...]) -> str | None:
    """The prefilled evidence text for one criterion's own check (``None``: it cannot be told from the
    stored decision, so only what was found is cited), or ``None`` when the clinician writes it all."""
    cited = "; ".join(evidence_line(e) for e in evidence)
    if own is None:
        return f"Found on the record: {cited}." if cited else None
    if own.status is Status.MET:
        return _text("Shown on the record", own.reason, "Evidence", cited)
    if own.status is Status.NOT_MET:
        return _text("Not met on the record", own.reason, "Evidence", cited)
    if own.retrieval_failed:
        lead = "Could not be retrieved from the EHR when coverage was checked, so not assessed"
        return _text(lead, own.reason, "Found", cited) + " Please answer from the chart."
    if cited:
        return _text("Not shown on the record", own.reason, "Values found but not usable", cited)
    return None


def evidence_line(evidence: Evidence) -> str:
    """``Observation/m1 valueQuantity = 1.2 g/dL (2026-11-10)``: reference, element, value, date."""
    value = " ".join(part for part in (evidence.value, evidence.unit) if part)
    text = f"{evidence.reference} {evidence.element}" + (f" = {value}" if value else "")
    return text + (f" ({evidence.date})" if evidence.date else "")


def _text(lead: str, reason: str, label: str, cited: str) -> str:
    text = f"{lead}: {reason.rstrip('.')}." if reason else f"{lead}."
    return f"{text} {label}: {cited}." if cited else text


def _answer(key: str, value) -> dict:
    return {key: value, "extension": [{"url": INFORMATION_ORIGIN_URL,
                                       "extension": [{"url": "source", "valueCode": AUTO_SERVER}]}]}
