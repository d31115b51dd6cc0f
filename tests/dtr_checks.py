"""Strict checks of Da Vinci DTR resources the payer side emits, for every test that gets one.

``check_questionnaire(q)`` and ``check_response(qr, q)`` raise ``AssertionError`` listing every problem
(``questionnaire_problems`` / ``response_problems`` return the list). ``fhir.resources`` checks the R4
structure only (it accepts a bogus ``item.type``); these are the profile and core rules it does not check:

Questionnaire (DTR 2.2 ``dtr-base-questionnaire`` / ``dtr-std-questionnaire`` on SDC, and core R4):
- ``meta.profile`` names dtr-std-questionnaire; ``url``, ``version``, a computable ``name``, ``title``,
  ``status``, ``subjectType`` = [Patient], a generated narrative (DTR 2.1 std), ``item`` 1..*;
- every item has a ``linkId`` unique in the form and a ``text`` (2.2 base, groups included), an R4 item
  type (no R5 ``coding``/``question``), groups have children and display items none (que-1), display
  items are neither required nor repeating (que-6), ``answerOption`` only on choice/open-choice (que-5);
- ``enableWhen`` names an existing question, never a group or display item, and several conditions
  name ``enableBehavior`` (que-12);
- every SDC expression is labelled ``text/fhirpath`` or ``text/cql*`` and is not empty, and the
  ``%variables`` it uses are SDC's own, a declared ``variable`` or a ``launchContext``;
- no ``sdc-questionnaire-endpoint`` and no assemble expectation (prohibited by DTR std); no item is
  hidden or read-only while it is filled from the EHR (DTR sec-4).

``check_package(parameters)`` checks a whole ``$questionnaire-package`` answer (the rules below for
every form and draft in it, the Bundle rules, and ``outcome_problems`` for its OperationOutcomes).

QuestionnaireResponse (DTR 2.2 ``dtr-questionnaireresponse`` on SDC, and core R4):
- ``meta.profile``, ``questionnaire`` = the form's ``url|version`` (or ``url``), ``subject`` a Patient,
  no ``basedOn``/``partOf``, ``qr-coverage`` 1..* (a Coverage), ``intendedUse`` 1..* with the CRD
  coverage-information codes, a QR status, ``authored`` a FHIR dateTime;
- every item's ``linkId`` is in the Questionnaire at the same place (parent group), groups carry no
  answers, display items nothing, each answer's value type fits its item's type;
- every answer has exactly one ``information-origin`` whose ``source`` is auto-client, auto-server,
  override or manual, with an ``author`` exactly when the source is override or manual (dtrx-1);
- no payer (``auto-server``) answer sits on an item with an initial or calculated expression: the
  client would overwrite it (DTR spec-73, LHC-Forms verified in dtr.md §5).

Written from ../shared/reference/dtr.md independently of ``cds_service.dtr`` so that it can catch that
package's mistakes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

DTR_SD = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/"
SDC_SD = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
STD_QUESTIONNAIRE = DTR_SD + "dtr-std-questionnaire"
DTR_RESPONSE = DTR_SD + "dtr-questionnaireresponse"
ORIGIN = DTR_SD + "information-origin"
INTENDED_USE_SYSTEM = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverage-information-codes"
R4_ITEM_TYPES = {"group", "display", "boolean", "decimal", "integer", "date", "dateTime", "time", "string", "text",
                 "url", "choice", "open-choice", "attachment", "reference", "quantity"}
ANSWER_VALUE = {"boolean": {"valueBoolean"}, "decimal": {"valueDecimal"}, "integer": {"valueInteger"},
                "date": {"valueDate"}, "dateTime": {"valueDateTime"}, "time": {"valueTime"},
                "string": {"valueString"}, "text": {"valueString"}, "url": {"valueUri"},
                "choice": {"valueCoding", "valueString", "valueInteger", "valueDate", "valueTime"},
                "open-choice": {"valueCoding", "valueString", "valueInteger", "valueDate", "valueTime"},
                "attachment": {"valueAttachment"}, "reference": {"valueReference"}, "quantity": {"valueQuantity"}}
ORIGIN_SOURCES = {"auto-client", "auto-server", "override", "manual"}
QR_STATUSES = {"in-progress", "completed", "amended", "entered-in-error", "stopped"}
SDC_VARIABLES = {"resource", "context", "questionnaire", "qitem", "rootResource", "ucum", "sct", "loinc",
                 "factory", "terminologies", "server"}
COMPUTABLE_NAME = re.compile(r"^[A-Z]([A-Za-z0-9_]){0,254}$")
FHIR_DATETIME = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?)?)?$")
VARIABLE_USE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)")
PROHIBITED = (SDC_SD + "sdc-questionnaire-endpoint", SDC_SD + "sdc-questionnaire-assemble-expectation")
FILLED_FROM_EHR = (SDC_SD + "sdc-questionnaire-initialExpression", SDC_SD + "sdc-questionnaire-calculatedExpression")
HIDDEN = "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"


def walk_items(items, parent: str | None = None) -> Iterator[tuple[dict, str | None]]:
    """Every item (questionnaire or response) with its parent's linkId, pre-order."""
    for item in items or ():
        yield item, parent
        yield from walk_items(item.get("item"), item.get("linkId"))
        for answer in item.get("answer") or ():
            yield from walk_items(answer.get("item"), item.get("linkId"))


def expressions(resource: dict) -> Iterator[tuple[str, dict]]:
    """(extension url, valueExpression) for every Expression anywhere in ``resource``."""
    stack = [resource]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("valueExpression"), dict):
                yield node.get("url", ""), node["valueExpression"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _launch_contexts(questionnaire: dict) -> set[str]:
    names = set()
    for ext in questionnaire.get("extension") or ():
        if ext.get("url") == SDC_SD + "sdc-questionnaire-launchContext":
            names |= {(p.get("valueCoding") or {}).get("code") or p.get("valueId")
                      for p in ext.get("extension") or () if p.get("url") == "name"}
    return names


def _declared_variables(resource: dict) -> set[str]:
    return {expr.get("name") for url, expr in expressions(resource) if url == VARIABLE}


def questionnaire_problems(q: dict) -> list[str]:
    problems = []
    if q.get("resourceType") != "Questionnaire":
        return ["resourceType must be Questionnaire"]
    if STD_QUESTIONNAIRE not in (q.get("meta") or {}).get("profile", []):
        problems.append("meta.profile must name dtr-std-questionnaire")
    for key in ("url", "version", "title"):
        if not isinstance(q.get(key), str) or not q[key]:
            problems.append(f"{key} is required")
    if not COMPUTABLE_NAME.match(q.get("name") or ""):
        problems.append("name must be a computable name")
    if q.get("status") not in ("draft", "active", "retired", "unknown"):
        problems.append("status must be a publication status")
    if q.get("subjectType") != ["Patient"]:
        problems.append("subjectType must be [Patient]")
    text = q.get("text") or {}
    if text.get("status") not in ("generated", "extensions", "additional", "empty") or \
            not str(text.get("div", "")).startswith('<div xmlns="http://www.w3.org/1999/xhtml"'):
        problems.append("text must be a narrative with an XHTML div")
    if not q.get("item"):
        problems.append("item is required (1..*)")
    if any(ext.get("url") in PROHIBITED for ext in q.get("extension") or ()):
        problems.append("sdc-questionnaire-endpoint / assemble-expectation are prohibited")
    problems += _item_problems(q)
    problems += _expression_problems(q)
    return problems


def _item_problems(q: dict) -> list[str]:
    problems = []
    types: dict[str, str] = {}
    for item, _ in walk_items(q.get("item")):
        link = item.get("linkId")
        if not link:
            problems.append("an item has no linkId")
            continue
        if link in types:
            problems.append(f"{link}: linkId is not unique")
        types[link] = item.get("type")
        if not item.get("text"):
            problems.append(f"{link}: text is required on every item")
        if item.get("type") not in R4_ITEM_TYPES:
            problems.append(f"{link}: type {item.get('type')!r} is not an R4 item type")
        if item.get("type") == "group" and not item.get("item"):
            problems.append(f"{link}: a group must have items (que-1)")
        if item.get("type") == "display" and (item.get("item") or item.get("required") or item.get("repeats")):
            problems.append(f"{link}: display items have no items, required or repeats (que-1, que-6)")
        if item.get("answerOption") and item.get("type") not in ("choice", "open-choice"):
            problems.append(f"{link}: answerOption only on choice/open-choice (que-5)")
        urls = {ext.get("url") for ext in item.get("extension") or ()}
        hidden = any(ext.get("url") == HIDDEN and ext.get("valueBoolean") for ext in item.get("extension") or ())
        if urls & set(FILLED_FROM_EHR) and (hidden or item.get("readOnly")):
            problems.append(f"{link}: an item filled from the EHR must be visible and editable (sec-4)")
    for item, _ in walk_items(q.get("item")):
        conditions = item.get("enableWhen") or ()
        for condition in conditions:
            target = types.get(condition.get("question"))
            if target is None or target in ("group", "display"):
                problems.append(f"{item.get('linkId')}: enableWhen must name an existing question")
        if len(conditions) > 1 and item.get("enableBehavior") not in ("all", "any"):
            problems.append(f"{item.get('linkId')}: several enableWhen need enableBehavior (que-12)")
    return problems


def _expression_problems(q: dict) -> list[str]:
    problems = []
    known = SDC_VARIABLES | _launch_contexts(q) | _declared_variables(q)
    for url, expr in expressions(q):
        language, text = expr.get("language"), expr.get("expression")
        if language != "text/fhirpath" and not str(language).startswith("text/cql"):
            problems.append(f"{url}: expression language {language!r} is neither FHIRPath nor CQL")
        if not text:
            problems.append(f"{url}: empty expression")
            continue
        unknown = set(VARIABLE_USE.findall(text)) - known
        if unknown:
            problems.append(f"{url}: {text!r} uses undeclared variables {sorted(unknown)}")
    return problems


def response_problems(qr: dict, q: dict) -> list[str]:
    problems = []
    if qr.get("resourceType") != "QuestionnaireResponse":
        return ["resourceType must be QuestionnaireResponse"]
    if DTR_RESPONSE not in (qr.get("meta") or {}).get("profile", []):
        problems.append("meta.profile must name dtr-questionnaireresponse")
    if qr.get("questionnaire") not in (f"{q.get('url')}|{q.get('version')}", q.get("url")):
        problems.append("questionnaire must be the form's url|version")
    if not str((qr.get("subject") or {}).get("reference", "")).startswith("Patient/"):
        problems.append("subject must reference a Patient")
    for key in ("basedOn", "partOf"):
        if key in qr:
            problems.append(f"{key} is prohibited (0..0)")
    if qr.get("status") not in QR_STATUSES:
        problems.append("status must be a QuestionnaireResponse status")
    if "authored" in qr and not FHIR_DATETIME.match(str(qr["authored"])):
        problems.append("authored must be a FHIR dateTime")
    extensions = qr.get("extension") or []
    coverages = [e for e in extensions if e.get("url") == DTR_SD + "qr-coverage"]
    if not coverages or any(not str((e.get("valueReference") or {}).get("reference", "")).startswith("Coverage/")
                            for e in coverages):
        problems.append("qr-coverage (1..*) must reference a Coverage")
    uses = [e for e in extensions if e.get("url") == DTR_SD + "intendedUse"]
    if not uses or any(c.get("system") != INTENDED_USE_SYSTEM
                       for e in uses for c in (e.get("valueCodeableConcept") or {}).get("coding", [{}])):
        problems.append("intendedUse (1..*) must use the CRD coverage-information codes")
    problems += _answer_problems(qr, q)
    return problems


def _answer_problems(qr: dict, q: dict) -> list[str]:
    problems = []
    form = {item["linkId"]: (item, parent) for item, parent in walk_items(q.get("item")) if "linkId" in item}
    for item, parent in walk_items(qr.get("item")):
        link = item.get("linkId")
        if link not in form:
            problems.append(f"{link}: no such item in the Questionnaire")
            continue
        question, form_parent = form[link]
        if parent != form_parent:
            problems.append(f"{link}: nested under {parent!r}, the Questionnaire has it under {form_parent!r}")
        answers = item.get("answer") or []
        if answers and question.get("type") in ("group", "display"):
            problems.append(f"{link}: a {question.get('type')} item has no answers")
        filled_by_client = any(ext.get("url") in FILLED_FROM_EHR for ext in question.get("extension") or ())
        for answer in answers:
            if filled_by_client and "auto-server" in _origin_sources(answer):
                problems.append(f"{link}: a payer answer on an item with an initial/calculated expression, which "
                                "the client lets overwrite it (spec-73)")
            values = {key for key in answer if key.startswith("value")}
            if len(values) != 1 or not values <= ANSWER_VALUE.get(question.get("type"), set()):
                problems.append(f"{link}: answer {sorted(values)} does not fit type {question.get('type')}")
            problems += [f"{link}: {p}" for p in origin_problems(answer)]
    return problems


def _origin_sources(answer: dict) -> list[str]:
    return [part.get("valueCode") for ext in answer.get("extension") or () if ext.get("url") == ORIGIN
            for part in ext.get("extension") or () if part.get("url") == "source"]


def origin_problems(answer: dict) -> list[str]:
    origins = [e for e in answer.get("extension") or () if e.get("url") == ORIGIN]
    if len(origins) != 1:
        return ["every answer needs exactly one information-origin"]
    parts = origins[0].get("extension") or []
    sources = [p.get("valueCode") for p in parts if p.get("url") == "source"]
    authors = [p for p in parts if p.get("url") == "author"]
    problems = []
    if len(sources) != 1 or sources[0] not in ORIGIN_SOURCES:
        problems.append(f"information-origin source {sources} is not one of {sorted(ORIGIN_SOURCES)}")
    elif bool(authors) != (sources[0] in ("override", "manual")):
        problems.append("information-origin author is required for override/manual and only then (dtrx-1)")
    return problems


def package_problems(parameters: dict) -> list[str]:
    """A ``$questionnaire-package`` answer (DTR 2.2 ``dtr-qpackage-output-parameters``, oper-10): a
    Parameters of ``PackageBundle``/``packagebundle`` collection Bundles (DTR-QPackageBundle), each with
    its Questionnaire first (dtrb-1) and exactly one draft QuestionnaireResponse for it (oper-18), plus
    optional ``outcome`` OperationOutcomes; at least one parameter."""
    if parameters.get("resourceType") != "Parameters" or not parameters.get("parameter"):
        return ["the answer must be a Parameters with at least one parameter"]
    problems = []
    for i, parameter in enumerate(parameters["parameter"]):
        resource = parameter.get("resource") or {}
        if parameter.get("name") == "outcome":
            problems += [f"outcome {i}: {p}" for p in outcome_problems(resource)]
        elif parameter.get("name") in ("PackageBundle", "packagebundle"):
            problems += [f"bundle {i}: {p}" for p in _bundle_problems(resource)]
        else:
            problems.append(f"parameter {i}: unexpected name {parameter.get('name')!r}")
    return problems


def _bundle_problems(bundle: dict) -> list[str]:
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "collection":
        return ["must be a collection Bundle"]
    problems = []
    if DTR_SD + "DTR-QPackageBundle" not in (bundle.get("meta") or {}).get("profile", []):
        problems.append("meta.profile must name DTR-QPackageBundle")
    resources = [entry.get("resource") or {} for entry in bundle.get("entry") or ()]
    if not resources or resources[0].get("resourceType") != "Questionnaire":
        return problems + ["the Questionnaire must be the first entry (dtrb-1)"]
    responses = [r for r in resources if r.get("resourceType") == "QuestionnaireResponse"]
    if len(responses) != 1:
        return problems + [f"exactly one QuestionnaireResponse is required, found {len(responses)}"]
    return problems + questionnaire_problems(resources[0]) + response_problems(responses[0], resources[0])


def outcome_problems(outcome: dict) -> list[str]:
    """An OperationOutcome a DTR app can show: issues with severity, code and ``details.text``."""
    if outcome.get("resourceType") != "OperationOutcome" or not outcome.get("issue"):
        return ["must be an OperationOutcome with at least one issue"]
    return [f"issue {i}: needs severity, code and details.text" for i, issue in enumerate(outcome["issue"])
            if not (issue.get("severity") and issue.get("code") and (issue.get("details") or {}).get("text"))]


def check_package(parameters: dict) -> None:
    problems = package_problems(parameters)
    assert not problems, "\n".join(problems)


def check_questionnaire(q: dict) -> None:
    problems = questionnaire_problems(q)
    assert not problems, "\n".join(problems)


def check_response(qr: dict, q: dict) -> None:
    problems = response_problems(qr, q)
    assert not problems, "\n".join(problems)
