"""Re-evaluation of a completed DTR QuestionnaireResponse: the same engine decides again, with the
clinician's answers as attested results of the criteria the record left unknown.

What the hook decided stays the basis (there is no EHR access at this point): for every criterion
with a check of its own, its stored own result (``policies.engine.own_result``; a group's own status the
stored combination cannot prove is unknown) and then the clinician's ``<id>.met`` answer:

| stored | answer ``true`` | answer ``false`` | no answer |
| --- | --- | --- | --- |
| met | met (the record's evidence) | not met (attested) | met |
| not met | not met: attestation never overrides a contradiction found in the record | not met | not met |
| unknown | **met by attestation** | not met (attested) | unknown |

A "no" is taken as it is said: a clinician contradicting the record is never promoted to met. A
criterion met by attestation cites the response item as its evidence and says so in its reason; the
caller reports these ids so that PA and PDAC review see what rests on attestation alone. The answers'
``information-origin`` is not trusted to tell record from attestation: the stored decision does.
``policies.engine.redecide`` then combines groups, applies the verdict rules and lists what is still
missing, exactly as at hook time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cds_service.dtr.context import DecisionContext
from cds_service.dtr.package import OperationError
from cds_service.dtr.questionnaire import evidence_link, met_link
from cds_service.response.cards import shown_verdict
from cds_service.response.coverage_information import coverage_information_extension
from fhir_mappings import Evidence
from policies import LeafResult, Policy, PolicyDecision, Status, own_result, redecide

ACCEPTED_STATUSES = ("completed", "amended")
ATTESTED = "Attested met by the clinician in the documentation questionnaire"
ATTESTED_NOT_MET = "Answered not met by the clinician in the documentation questionnaire"
EVIDENCE_TEXT_LIMIT = 500
NOT_TOLD = "Not assessed on its own: the record was read for it together with its parts"


@dataclass(frozen=True)
class Reevaluation:
    decision: PolicyDecision
    attested: tuple[str, ...]  # criteria met on attestation alone (PA/PDAC review must know)


def reevaluate(policy: Policy, questionnaire: dict, stored: PolicyDecision, response: object) -> Reevaluation:
    """The decision for ``stored``'s order with the answers of ``response`` (a completed response to
    ``questionnaire``, the form of ``policy``), or a 4xx ``OperationError`` naming what is wrong."""
    if stored.policy_version != policy.version:
        raise OperationError(422, "the policy changed since the coverage decision; sign the order again", "context")
    answers = _answers(questionnaire, response)
    results = {c.id: c for c in stored.criteria}
    reference = _reference(response)
    own: dict[str, LeafResult] = {}
    attested = []
    for root in policy.required if stored.order_kind == "car-t" else (policy.tocilizumab,):
        for node in root.walk():
            if node.check is None or node.id not in results:
                continue
            own[node.id], by_attestation = _own_result(node, results, answers, reference)
            if by_attestation:
                attested.append(node.id)
    return Reevaluation(redecide(policy, stored, own), tuple(attested))


def _own_result(node, results, answers: dict[str, object], reference: str) -> tuple[LeafResult, bool]:
    """The own result of ``node`` after its answer (see the table above), and whether it is met on
    attestation alone."""
    result = results[node.id]
    stored = own_result(node, results) or LeafResult(Status.UNKNOWN, NOT_TOLD, result.evidence, result.retrieval_failed)
    answer = answers.get(met_link(node.id))
    if answer is None or stored.status is Status.NOT_MET or (answer is True and stored.status is Status.MET):
        return stored, False
    evidence = [Evidence(reference, _answer_path(met_link(node.id)), str(answer).lower())]
    note = answers.get(evidence_link(node.id))
    if isinstance(note, str) and note.strip():
        evidence.append(Evidence(reference, _answer_path(evidence_link(node.id)), note.strip()[:EVIDENCE_TEXT_LIMIT]))
    if answer is False:
        return LeafResult(Status.NOT_MET, ATTESTED_NOT_MET, tuple(evidence)), False
    return LeafResult(Status.MET, ATTESTED, tuple(evidence)), True


def _answer_path(link_id: str) -> str:
    return f"item.where(linkId='{link_id}').answer.value"


def _reference(response: object) -> str:
    rid = response.get("id") if isinstance(response, dict) else None
    return f"QuestionnaireResponse/{rid}" if isinstance(rid, str) and rid else "QuestionnaireResponse"


def _answers(questionnaire: dict, response: object) -> dict[str, object]:
    """linkId -> the one answer value of each answered question, after checking that ``response``
    answers this version of this form and is complete."""
    if not isinstance(response, dict) or response.get("resourceType") != "QuestionnaireResponse":
        raise OperationError(400, "a QuestionnaireResponse is required", "QuestionnaireResponse")
    expected = f"{questionnaire['url']}|{questionnaire['version']}"
    if response.get("questionnaire") not in (expected, questionnaire["url"]):
        raise OperationError(422, "the response does not answer the current version of this form; fill the "
                                  "current package again", "QuestionnaireResponse.questionnaire")
    if response.get("status") not in ACCEPTED_STATUSES:
        raise OperationError(422, "the response must be completed before it is evaluated",
                             "QuestionnaireResponse.status")
    types = {item["linkId"]: item.get("type") for item in _walk(questionnaire.get("item"))}
    answers: dict[str, object] = {}
    for item in _walk(response.get("item")):
        link = item.get("linkId")
        if not isinstance(link, str) or link not in types:
            raise OperationError(400, "an item's linkId is not in the form", "QuestionnaireResponse.item.linkId")
        values = [v for a in _list(item.get("answer")) if isinstance(a, dict) for k, v in a.items()
                  if k.startswith("value")]
        if not values:
            continue
        expected_type = bool if types[link] == "boolean" else str
        if link in answers or len(values) != 1 or not isinstance(values[0], expected_type):
            raise OperationError(400, f"item {link} must have one {types[link]} answer", "QuestionnaireResponse.item")
        answers[link] = values[0]
    return answers


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _walk(items) -> Iterator[dict]:
    """Every item dict of an (untrusted) item tree, pre-order, through groups and answers."""
    for item in _list(items):
        if isinstance(item, dict):
            yield item
            yield from _walk(item.get("item"))
            for answer in _list(item.get("answer")):
                if isinstance(answer, dict):
                    yield from _walk(answer.get("item"))


def evaluation_parameters(result: Reevaluation, as_of: date, assertion_id: str, questionnaire: str | None = None) -> dict:
    """The ``$evaluate`` answer: the order with its updated CRD coverage-information (same
    ``coverage-assertion-id``; the reason names what rests on attestation; the form's canonical
    ``questionnaire`` where the verdict still needs documentation with the PA), the verdict, what is
    still missing and every criterion's status (``attested`` where met on attestation alone)."""
    decision = result.decision
    verdict = shown_verdict(decision)
    output: list[dict] = []
    if decision.coverage is not None:
        extension = coverage_information_extension(decision, verdict, as_of, assertion_id,
                                                   questionnaires=(questionnaire,) if questionnaire else ())
        if result.attested:
            _note_attestation(extension, result.attested)
        output.append({"name": "coverage-information", "extension": [extension],
                       "valueReference": {"reference": decision.order}})
    output.append({"name": "verdict", "valueCode": verdict.value})
    output += [{"name": "missingDocumentation", "valueString": text} for text in decision.missing_documentation]
    for criterion in decision.criteria:
        parts: list[dict[str, Any]] = [{"name": "id", "valueString": criterion.id}, {"name": "status", "valueCode": criterion.status.value},
                 {"name": "reason", "valueString": criterion.reason}]
        if criterion.id in result.attested:
            parts.append({"name": "attested", "valueBoolean": True})
        output.append({"name": "criterion", "part": parts})
    return {"resourceType": "Parameters", "parameter": output}


def _note_attestation(extension: dict, attested: tuple[str, ...]) -> None:
    """Say in the assertion's reason which criteria are met on the clinician's attestation alone."""
    for part in extension["extension"]:
        if part["url"] == "reason":
            text = part["valueCodeableConcept"].get("text", "")
            part["valueCodeableConcept"]["text"] = (
                f"{text}; met on the clinician's attestation, for prior authorization review: {', '.join(attested)}")


def evaluate_operation(parameters: object, *, policies: Sequence[Policy], forms: Mapping[str, dict],
                       find_context: Callable[[str], DecisionContext | None], now: datetime) -> dict:
    """``$evaluate``: a ``Parameters`` with ``questionnaireResponse`` (the completed response) and
    ``context`` (the coverage-assertion-id it was prefilled for) in, ``evaluation_parameters`` out.
    The response must answer the form of one of the context's decisions, and carry that context in
    its ``identifier`` if it carries one, so that answers are never applied to another decision."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters" \
            or not isinstance(parameters.get("parameter"), list):
        raise OperationError(400, "the request body must be a FHIR Parameters resource", "Parameters")
    named = {p["name"]: p for p in parameters["parameter"] if isinstance(p, dict) and isinstance(p.get("name"), str)}
    assertion_id = (named.get("context") or {}).get("valueString")
    if not isinstance(assertion_id, str) or not assertion_id:
        raise OperationError(400, "the context parameter (the coverage-assertion-id, valueString) is required",
                             "context")
    response = (named.get("questionnaireResponse") or {}).get("resource")
    if not isinstance(response, dict) or response.get("resourceType") != "QuestionnaireResponse":
        raise OperationError(400, "the questionnaireResponse parameter must carry a QuestionnaireResponse",
                             "questionnaireResponse")
    identifier = response.get("identifier")
    if isinstance(identifier, dict) and identifier.get("value") not in (None, assertion_id):
        raise OperationError(400, "the response was prefilled for another context", "QuestionnaireResponse.identifier")
    context = find_context(assertion_id)
    if context is None or context.expires <= now:
        raise OperationError(404, "no coverage decision is known for this context (coverage-assertion-id), or it "
                                "has expired", "context")
    url = str(response.get("questionnaire", "")).partition("|")[0]
    by_id = {policy.id: policy for policy in policies}
    for decision in context.decisions:
        form = forms.get(decision.policy_id)
        if decision.order_kind == "car-t" and form is not None and form["url"] == url:
            result = reevaluate(by_id[decision.policy_id], form, decision, response)
            return evaluation_parameters(result, now.date(), assertion_id, url)
    raise OperationError(422, "the response does not answer a form of this context's coverage decisions",
                         "QuestionnaireResponse.questionnaire")
