"""Reusable checks of what the service sends: call them on every response a test receives.

``check_response(body, ...)`` applies, and reports together:
1. ``cds_service/schemas/cds-response.schema.json`` (CDS Hooks 2.0 tightened by CRD);
2. the Inferno Da Vinci CRD server test kit's checks (``service_response_validation``,
   ``card_optional_fields_validation``, ``coverage_information_system_action_validation``), re-implemented
   here because the kit itself cannot run offline;
3. the structure of each coverage-information extension and the CRD 2.2.1 invariants q1-q9 plus
   "pa-needed whenever covered != not-covered" (``tests.crd_checks.extension_problems``), and resp-37
   (an update changes nothing but the coverage extension) when the request's ``draftOrders`` are given;
4. no null and no empty value anywhere (CDS Hooks §Use of JSON), ``"cards": []`` excepted.

``check_discovery(document)`` applies the discovery schema, Inferno's discovery checks and CRD dev-1..dev-8.
Both raise ``AssertionError`` listing every problem; ``*_problems`` return the list instead.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from importlib import resources
from urllib.parse import urlsplit

from fhir.resources.R4B import get_fhir_model_class
from jsonschema import Draft202012Validator

from tests.crd_checks import COVERAGE_INFORMATION_URL, extension_problems

ORDER_TYPES = {"DeviceRequest", "MedicationRequest", "NutritionOrder", "ServiceRequest", "VisionPrescription",
               "CommunicationRequest"}
# Hooks after which Inferno requires a systemActions member.
SYSTEM_ACTION_HOOKS = {"appointment-book", "order-sign", "order-dispatch"}
CARD_TYPE_CODES = {"coverage-info", "unsolicited-determ", "claim", "insurance", "limits", "network",
                   "appropriate-use", "cost", "therapy-alternatives-opt", "therapy-alternatives-req",
                   "clinical-reminder", "duplicate-therapy", "contraindication", "guideline", "off-guideline"}
# CDS Hooks 2.0 prefetch tokens: a root-level context field, or one of the user tokens (no FHIRPath).
CH2_TOKEN = re.compile(r"\{\{\s*(context\.[A-Za-z]+|userPractitionerId|"
                       r"userPractitionerRoleId|userPatientId|userRelatedPersonId)\s*\}\}")


def _schema_validator(name: str) -> Draft202012Validator:
    text = resources.files("cds_service.schemas").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text), format_checker=Draft202012Validator.FORMAT_CHECKER)


_RESPONSE_SCHEMA = _schema_validator("cds-response")
_DISCOVERY_SCHEMA = _schema_validator("discovery")


def _schema_problems(validator: Draft202012Validator, body) -> list[str]:
    return [f"schema: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
            for e in validator.iter_errors(body)]


def empty_value_problems(value, path: str = "", allow_empty_cards: bool = True) -> list[str]:
    """Every null, "", [] or {} inside ``value`` (CDS Hooks: optional members are omitted, never empty)."""
    if value is None or value == "" or value == [] or value == {}:
        if not (allow_empty_cards and path == "cards" and value == []):
            return [f"{path or '(root)'}: null or empty value"]
        return []
    problems = []
    if isinstance(value, dict):
        for key, child in value.items():
            problems += empty_value_problems(child, f"{path}.{key}" if path else key, allow_empty_cards)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            problems += empty_value_problems(child, f"{path}[{index}]", allow_empty_cards)
    return problems


def _is_absolute_url(url) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _fhir_problems(resource, path: str) -> list[str]:
    """Inferno: a create/update resource must parse as FHIR (here: the fhir.resources R4B model)."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return [f"{path}: not a FHIR resource"]
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return [f"{path}: does not parse as FHIR R4 {resource['resourceType']}: {str(exc)[:300]}"]
    return []


def _action_problems(action, path: str) -> list[str]:
    if not isinstance(action, dict):
        return [f"{path}: not an object"]
    problems = []
    if action.get("type") not in ("create", "update", "delete"):
        problems.append(f"{path}.type: must be create, update or delete")
    if not isinstance(action.get("description"), str):
        problems.append(f"{path}.description: required string (CDS Hooks 2.0, Inferno)")
    if action.get("type") in ("create", "update"):
        problems += _fhir_problems(action.get("resource"), f"{path}.resource")
    if action.get("type") == "delete" and not isinstance(action.get("resourceId"), str):
        problems.append(f"{path}.resourceId: required for delete")
    return problems


def _card_problems(card, path: str) -> list[str]:
    if not isinstance(card, dict):
        return [f"{path}: not an object"]
    problems = []
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary or len(summary) >= 140:
        problems.append(f"{path}.summary: required string shorter than 140 characters")
    if card.get("indicator") not in ("info", "warning", "critical"):
        problems.append(f"{path}.indicator: must be info, warning or critical")
    source = card.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("label"), str):
        problems.append(f"{path}.source.label: required")
    topic = source.get("topic") if isinstance(source, dict) else None
    if not isinstance(topic, dict) or not topic.get("code") or not topic.get("system"):
        problems.append(f"{path}.source.topic: code and system required (CRD resp-5)")
    elif topic.get("code") not in CARD_TYPE_CODES:
        problems.append(f"{path}.source.topic.code: not a CRD card-type code")
    for name in ("uuid", "detail"):
        if name in card and not isinstance(card[name], str):
            problems.append(f"{path}.{name}: must be a string")
    if not isinstance(card.get("uuid"), str):
        problems.append(f"{path}.uuid: required (CRD; feedback refers to it)")
    suggestions = card.get("suggestions") or []
    if suggestions and card.get("selectionBehavior") not in ("at-most-one", "any"):
        problems.append(f"{path}.selectionBehavior: required (at-most-one|any) when suggestions exist")
    if not suggestions and "selectionBehavior" in card:
        problems.append(f"{path}.selectionBehavior: only allowed with suggestions")
    if card.get("selectionBehavior") == "at-most-one" and sum(
            bool(isinstance(s, dict) and s.get("isRecommended")) for s in suggestions) > 1:
        problems.append(f"{path}.suggestions: more than one isRecommended with at-most-one")
    for index, reason in enumerate(card.get("overrideReasons") or []):
        if not isinstance(reason, dict) or not all(reason.get(k) for k in ("code", "system", "display")):
            problems.append(f"{path}.overrideReasons[{index}]: code, system and display required")
    for index, link in enumerate(card.get("links") or []):
        lpath = f"{path}.links[{index}]"
        if not isinstance(link, dict):
            problems.append(f"{lpath}: not an object")
            continue
        if not link.get("label"):
            problems.append(f"{lpath}.label: required")
        if not _is_absolute_url(link.get("url")):
            problems.append(f"{lpath}.url: must be a valid absolute URL")
        if link.get("type") not in ("absolute", "smart"):
            problems.append(f"{lpath}.type: must be absolute or smart")
        if link.get("type") == "absolute" and "appContext" in link:
            problems.append(f"{lpath}.appContext: not allowed on absolute links")
    for index, suggestion in enumerate(suggestions):
        spath = f"{path}.suggestions[{index}]"
        if not isinstance(suggestion, dict):
            problems.append(f"{spath}: not an object")
            continue
        if not suggestion.get("label"):
            problems.append(f"{spath}.label: required")
        if not isinstance(suggestion.get("uuid"), str):
            problems.append(f"{spath}.uuid: required (CRD resp-3)")
        if "actions" in suggestion:
            actions = suggestion["actions"]
            if not isinstance(actions, list) or not actions:
                problems.append(f"{spath}.actions: must be a non-empty array")
            else:
                for a_index, action in enumerate(actions):
                    problems += _action_problems(action, f"{spath}.actions[{a_index}]")
    return problems


def coverage_information(resource) -> list[dict[str, list]]:
    """The coverage-information extensions of a resource, each as {sub-extension url: [values...]}."""
    found = []
    for ext in resource.get("extension", []) if isinstance(resource, dict) else []:
        if isinstance(ext, dict) and ext.get("url") == COVERAGE_INFORMATION_URL:
            subs = defaultdict(list)
            for sub in ext.get("extension", []):
                value = next((v for k, v in sub.items() if k.startswith("value")), None)
                subs[sub.get("url")].append(value)
            found.append(dict(subs))
    return found


def _strip_coverage_information(resource: dict) -> dict:
    stripped = dict(resource)
    remaining = [e for e in resource.get("extension", []) if e.get("url") != COVERAGE_INFORMATION_URL]
    stripped.pop("extension", None)
    if remaining:
        stripped["extension"] = remaining
    return stripped


def _system_action_problems(actions: list, draft_orders: dict | None) -> list[str]:
    problems = []
    drafts = {}
    if draft_orders is not None:
        for entry in draft_orders.get("entry", []):
            resource = entry.get("resource", {})
            drafts[(resource.get("resourceType"), resource.get("id"))] = resource
    assertion_ids, pa_ids = defaultdict(set), defaultdict(set)
    for index, action in enumerate(actions):
        path = f"systemActions[{index}]"
        problems += _action_problems(action, path)
        resource = action.get("resource") if isinstance(action, dict) else None
        infos = coverage_information(resource)
        if not infos:
            continue
        if action.get("type") != "update":
            problems.append(f"{path}.type: a coverage-information action must be an update")
        key = (resource.get("resourceType"), resource.get("id"))
        if draft_orders is not None:
            original = drafts.get(key)
            if original is None:
                problems.append(f"{path}.resource: does not target a draftOrders entry (CRD found-36)")
            elif _strip_coverage_information(resource) != _strip_coverage_information(original):
                problems.append(f"{path}.resource: changes more than the coverage extension (CRD resp-37)")
        extensions = [e for e in resource["extension"] if isinstance(e, dict) and e.get("url") == COVERAGE_INFORMATION_URL]
        for i_index, (extension, subs) in enumerate(zip(extensions, infos, strict=False)):
            problems += [f"{path}.resource coverage-information[{i_index}]: {p}" for p in extension_problems(extension)]
            coverage = json.dumps((subs.get("coverage") or [None])[0], sort_keys=True)
            assertion_ids[coverage].update(subs.get("coverage-assertion-id", []))
            pa_ids[coverage].update(subs.get("satisfied-pa-id", []))
    for coverage, ids in assertion_ids.items():
        if len(ids) != 1:
            problems.append(f"coverage {coverage}: exactly one distinct coverage-assertion-id expected (Inferno)")
        if len(pa_ids[coverage]) > 1:
            problems.append(f"coverage {coverage}: at most one distinct satisfied-pa-id expected (Inferno)")
    all_ids = [next(iter(ids)) for ids in assertion_ids.values() if len(ids) == 1]
    if len(all_ids) != len(set(all_ids)):
        problems.append("coverage-assertion-id reused across coverages (CRD resp-32)")
    return problems


def response_problems(body, *, hook: str = "order-sign", draft_orders: dict | None = None,
                      expect_system_actions: bool | None = None) -> list[str]:
    """Every problem with a CDS Hooks response body (see the module docstring).

    ``expect_system_actions``: True when the call had in-scope orders (Inferno requires systemActions on
    order-sign; CDS Hooks forbids an empty array, so a response with nothing to say has none), False to
    require that there are none, None to not check.
    """
    if not isinstance(body, dict):
        return ["(root): response must be a JSON object"]
    problems = _schema_problems(_RESPONSE_SCHEMA, body) + empty_value_problems(body)
    cards = body.get("cards")
    if not isinstance(cards, list):
        problems.append("cards: required array (Inferno)")
        cards = []
    for index, card in enumerate(cards):
        problems += _card_problems(card, f"cards[{index}]")
    actions = body.get("systemActions", [])
    if expect_system_actions and hook in SYSTEM_ACTION_HOOKS and not actions:
        problems.append("systemActions: required for this hook (Inferno, CRD hook-16)")
    if expect_system_actions is False and actions:
        problems.append("systemActions: none expected")
    if isinstance(actions, list):
        problems += _system_action_problems(actions, draft_orders)
    uuids = [c.get("uuid") for c in cards if isinstance(c, dict)]
    uuids += [s.get("uuid") for c in cards if isinstance(c, dict) for s in c.get("suggestions") or []
              if isinstance(s, dict)]
    if len([u for u in uuids if u]) != len({u for u in uuids if u}):
        problems.append("uuid: cards and suggestions must have distinct uuids")
    return problems


def check_response(body, **options) -> None:
    problems = response_problems(body, **options)
    assert not problems, "response check failed:\n  " + "\n  ".join(problems)


def discovery_problems(document) -> list[str]:
    """Discovery schema, Inferno's discovery checks, CRD dev-1..dev-8 and CDS Hooks 2.0 prefetch tokens."""
    problems = _schema_problems(_DISCOVERY_SCHEMA, document) + empty_value_problems(document)
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, list):
        return problems + ["services: required array"]
    ids = [s.get("id") for s in services if isinstance(s, dict)]
    if len(ids) != len(set(ids)):
        problems.append("services: ids must be unique")
    for index, service in enumerate(services):
        path = f"services[{index}]"
        if not isinstance(service, dict):
            problems.append(f"{path}: not an object")
            continue
        for name in ("hook", "id", "description"):
            if not isinstance(service.get(name), str):
                problems.append(f"{path}.{name}: required string (Inferno)")
        for key, template in (service.get("prefetch") or {}).items():
            leftover = CH2_TOKEN.sub("", template) if isinstance(template, str) else ""
            if "{{" in leftover or "}}" in leftover:
                problems.append(f"{path}.prefetch.{key}: token not allowed in CDS Hooks 2.0")
        extension = service.get("extension") or {}
        versions = extension.get("davinci-crd.version")
        if not versions:
            problems.append(f"{path}.extension: davinci-crd.version required (CRD dev-1)")
        options = extension.get("davinci-crd.configuration-options") or []
        for field in ("code", "name", "description"):
            values = [o.get(field) for o in options if isinstance(o, dict)]
            if len(values) != len(set(values)):
                problems.append(f"{path}: configuration option {field}s must be unique (CRD dev-8)")
        for o_index, option in enumerate(options):
            if not isinstance(option, dict):
                continue
            kind = {"boolean": bool, "integer": int}.get(option.get("type"))
            default = option.get("default")
            if kind is None or not isinstance(default, kind) or (kind is int and isinstance(default, bool)):
                problems.append(f"{path}.configuration-options[{o_index}]: default must match type (CRD dev-4)")
            if option.get("type") == "boolean" and option.get("code") not in CARD_TYPE_CODES:
                problems.append(f"{path}.configuration-options[{o_index}]: boolean code not a card type (CRD dev-7)")
    return problems


def check_discovery(document) -> None:
    problems = discovery_problems(document)
    assert not problems, "discovery check failed:\n  " + "\n  ".join(problems)
