"""Strict checks of CRD coverage-information system actions, for every order-sign response a test gets.

``check_coverage_information(response, draft_orders, expected_orders=None)`` raises ``AssertionError``
listing every problem (``coverage_information_problems`` returns the list):

- each coverage-information action is an ``update`` with a ``description`` and no ``resourceId``
  (CH2, Inferno), targets a resource of ``draftOrders`` (CRD found-36), one action per order
  (CRD resp-29), and, when ``expected_orders`` is given, exactly those orders get one;
- the updated resource is the draft order unchanged except for one added ``ext-coverage-information``
  (CRD resp-37); an earlier assertion for the same Coverage may be replaced, nothing else may change,
  and the other extensions keep their order;
- every ``ext-coverage-information`` has the structure of the CRD extension (known sub-extensions, each
  with exactly one value of the right type, cardinalities, required code sets, ``date`` a FHIR date,
  the complex ``detail`` parts, ``billingCode`` Codings, and a ``detail`` whenever ``info-needed`` is OTH)
  and satisfies the CRD 2.2.1 invariants q1-q9 plus "pa-needed whenever covered != not-covered"
  (the CRD 2.0.1 q2 expression is the one Inferno validates against);
- ``coverage-assertion-id``: all repetitions for one Coverage share one id, distinct Coverages have
  distinct ids (Inferno; CRD resp-32/33).

Written from the CRD extension definition independently of ``cds_service.response.coverage_information``
so that it can catch that module's mistakes. ``tests/response_checks.py`` covers the rest of the response.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

COVERAGE_INFORMATION_URL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
REASON_VALUE_SET = {
    ("http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp", code)
    for code in ("gold-card", "no-member-found", "no-active-coverage", "coverage-not-found", "auth-out-network",
                 "technical")
}
FHIR_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")

# sub-extension url -> (value[x] key, min, max (None = *), allowed codes or None)
SUB_EXTENSIONS = {
    "coverage": ("valueReference", 1, 1, None),
    "covered": ("valueCode", 1, 1, {"covered", "not-covered", "conditional", "indeterminate"}),
    "pa-needed": ("valueCode", 0, 1, {"no-auth", "auth-needed", "satisfied", "performpa", "conditional",
                                      "indeterminate"}),
    "doc-needed": ("valueCode", 0, None, {"clinical", "admin", "patient", "conditional", "indeterminate"}),
    "doc-purpose": ("valueCode", 0, None, {"withpa", "withclaim", "withorder", "retain-doc", "OTH"}),
    "info-needed": ("valueCode", 0, None, {"performer", "location", "timeframe", "contract-window",
                                           "detail-code", "OTH"}),
    "billingCode": ("valueCoding", 0, None, None),
    "reason": ("valueCodeableConcept", 0, None, None),
    "detail": (None, 0, None, None),  # complex: checked by _detail_problems
    "dependency": ("valueReference", 0, None, None),
    "questionnaire": ("valueCanonical", 0, None, None),
    "date": ("valueDate", 1, 1, None),
    "coverage-assertion-id": ("valueString", 1, 1, None),
    "satisfied-pa-id": ("valueString", 0, 1, None),
    "contact": (None, 0, None, None),  # valueContactDetail (2.2) or valueContactPoint (2.0.1/2.1)
    "expiry-date": ("valueDate", 0, 1, None),
}


def _codes(parts: dict[str, list], url: str) -> list:
    return [p.get("valueCode") for p in parts.get(url, [])]


def _reasons(parts: dict[str, list]) -> list[dict]:
    return [p.get("valueCodeableConcept") or {} for p in parts.get("reason", [])]


def _reason_outside_value_set_without_text(parts: dict[str, list]) -> bool:
    for reason in _reasons(parts):
        codings = [(c.get("system"), c.get("code")) for c in reason.get("coding", [])]
        if any(c not in REASON_VALUE_SET for c in codings) and not reason.get("text"):
            return True
    return False


# (name, predicate over the sub-extensions by url that is True when the invariant is broken)
INVARIANTS = (
    ("q1: questionnaire requires doc-needed", lambda p: p.get("questionnaire") and not p.get("doc-needed")),
    ("q2: not-covered forbids pa-needed", lambda p: "not-covered" in _codes(p, "covered") and p.get("pa-needed")),
    ("q3: conditional requires info-needed", lambda p: "conditional" in (
        _codes(p, "covered") + _codes(p, "pa-needed") + _codes(p, "doc-needed")) and not p.get("info-needed")),
    ("q4: no-auth/satisfied forbid doc-purpose withpa", lambda p: {"no-auth", "satisfied"} & set(
        _codes(p, "pa-needed")) and "withpa" in _codes(p, "doc-purpose")),
    ("q5: satisfied-pa-id iff pa-needed satisfied",
     lambda p: bool(p.get("satisfied-pa-id")) != ("satisfied" in _codes(p, "pa-needed"))),
    ("q6: info-needed OTH requires reason", lambda p: "OTH" in _codes(p, "info-needed") and not p.get("reason")),
    ("q7: reason coded outside the value set requires text", _reason_outside_value_set_without_text),
    ("q8: doc-purpose requires reason", lambda p: p.get("doc-purpose") and not p.get("reason")),
    ("q9: indeterminate requires reason", lambda p: "indeterminate" in (
        _codes(p, "covered") + _codes(p, "pa-needed") + _codes(p, "doc-needed")) and not p.get("reason")),
    ("pa-needed required unless not-covered (CRD 2.0.1 q2 expression)",
     lambda p: _codes(p, "covered") and "not-covered" not in _codes(p, "covered") and not p.get("pa-needed")),
)


def extension_problems(extension: dict) -> list[str]:
    """Structure and invariants of one ``ext-coverage-information`` extension."""
    if not isinstance(extension, dict) or extension.get("url") != COVERAGE_INFORMATION_URL:
        return ["not an ext-coverage-information extension"]
    if any(k.startswith("value") for k in extension):
        return ["a complex extension has no value[x]"]
    parts: dict[str, list] = defaultdict(list)
    problems = []
    for part in extension.get("extension") or []:
        url = part.get("url") if isinstance(part, dict) else None
        if url not in SUB_EXTENSIONS:
            problems.append(f"unknown sub-extension {url!r}")
            continue
        parts[url].append(part)
        value_key, _, _, codes = SUB_EXTENSIONS[url]
        values = [k for k in part if k.startswith("value")]
        if value_key is not None and values != [value_key]:
            problems.append(f"{url}: exactly one {value_key} expected, found {values}")
        elif codes is not None and part.get(value_key) not in codes:
            problems.append(f"{url}: code {part.get(value_key)!r} not in the required value set")
    for url, (_value_key, low, high, _) in SUB_EXTENSIONS.items():
        count = len(parts.get(url, []))
        if count < low or (high is not None and count > high):
            problems.append(f"{url}: occurs {count} times, expected {low}..{high if high is not None else '*'}")
    for part in parts.get("date", []) + parts.get("expiry-date", []):
        if not FHIR_DATE.match(str(part.get("valueDate"))):
            problems.append(f"{part['url']}: {part.get('valueDate')!r} is not a FHIR date")
    for part in parts.get("coverage", []):
        reference = (part.get("valueReference") or {}).get("reference") or ""
        if not re.search(r"(^|/)Coverage/[A-Za-z0-9\-.]{1,64}$", reference):
            problems.append(f"coverage: {reference!r} is not a reference to a Coverage")
    for reason in _reasons(parts):
        if not reason.get("text") and not reason.get("coding"):
            problems.append("reason: needs coding or text")
    for part in parts.get("detail", []):
        problems += _detail_problems(part)
    for part in parts.get("billingCode", []):
        coding = part.get("valueCoding") or {}
        if not (isinstance(coding.get("system"), str) and isinstance(coding.get("code"), str)):
            problems.append("billingCode: a Coding needs system and code")
    if "OTH" in _codes(parts, "info-needed") and not parts.get("detail"):
        problems.append("info-needed OTH needs at least one detail saying what is needed")
    problems += [name for name, broken in INVARIANTS if broken(parts)]
    return problems


DETAIL_CATEGORIES = {"cat-limitation", "cat-decisional", "cat-other"}
DETAIL_VALUE_KEYS = {"valueBoolean", "valueString", "valueUrl", "valueQuantity", "valuePeriod"}


def _detail_problems(detail: dict) -> list[str]:
    """The ``detail`` complex sub-extension: category (required code set; 1..1 in CRD 2.2, absent in the
    CRD 2.0.1 that Inferno's fixtures follow, so 0..1 here), code 1..1 (CodeableConcept), value 1..1
    (boolean, string, url, Quantity or Period), qualification 0..1 (string), nothing else."""
    if any(k.startswith("value") for k in detail):
        return ["detail: a complex extension has no value[x]"]
    subs = defaultdict(list)
    for part in detail.get("extension") or []:
        subs[part.get("url") if isinstance(part, dict) else None].append(part)
    problems = [f"detail: unknown part {url!r}" for url in subs if url not in ("category", "code", "value", "qualification")]
    for url, low in (("category", 0), ("code", 1), ("value", 1), ("qualification", 0)):
        if not low <= len(subs.get(url, [])) <= 1:
            problems.append(f"detail.{url}: occurs {len(subs.get(url, []))} times")
    for part in subs.get("category", []):
        if part.get("valueCode") not in DETAIL_CATEGORIES:
            problems.append("detail.category: not cat-limitation, cat-decisional or cat-other")
    for part in subs.get("code", []):
        if not (part.get("valueCodeableConcept") or {}).get("coding"):
            problems.append("detail.code: a coded valueCodeableConcept is required")
    for part in subs.get("value", []):
        if len([k for k in part if k.startswith("value")]) != 1 or not DETAIL_VALUE_KEYS & set(part):
            problems.append("detail.value: exactly one boolean, string, url, Quantity or Period value")
    for part in subs.get("qualification", []):
        if not isinstance(part.get("valueString"), str):
            problems.append("detail.qualification: valueString required")
    return problems


def unchanged_except_coverage_information(updated: dict, draft: dict) -> list[str]:
    """CRD resp-37: ``updated`` is ``draft`` plus exactly one coverage-information extension, with at
    most an earlier assertion for the same Coverage removed."""
    problems = []
    if {k: v for k, v in updated.items() if k != "extension"} != {k: v for k, v in draft.items() if k != "extension"}:
        problems.append("elements other than extension changed")
    before, after = list(draft.get("extension") or []), list(updated.get("extension") or [])
    added = [e for e in after if e not in before]
    removed = [e for e in before if e not in after]
    if len(added) != 1 or added[0].get("url") != COVERAGE_INFORMATION_URL:
        return problems + [f"expected exactly one added coverage-information extension, found {len(added)} added"]
    coverage = _coverage_of(added[0])
    for extension in removed:
        if extension.get("url") != COVERAGE_INFORMATION_URL or _coverage_of(extension) != coverage:
            problems.append("an extension of the draft order was removed")
    if [e for e in after if e is not added[0]] != [e for e in before if e not in removed]:
        problems.append("the draft order's other extensions changed order")
    return problems


def coverage_information_problems(response: dict, draft_orders, expected_orders: Iterable[str] | None = None) -> list[str]:
    """Every problem with the response's coverage-information actions (see the module docstring).
    ``draft_orders`` is the request's ``draftOrders`` Bundle or a list of its resources."""
    drafts = {f"{r.get('resourceType')}/{r.get('id')}": r for r in _resources(draft_orders)}
    problems: list[str] = []
    ordered: list[str] = []
    ids_by_coverage: dict[str, set] = defaultdict(set)
    for index, action in enumerate(response.get("systemActions") or []):
        resource = action.get("resource") if isinstance(action, dict) else None
        extensions = [e for e in (resource or {}).get("extension") or [] if e.get("url") == COVERAGE_INFORMATION_URL]
        if not extensions:
            continue
        path = f"systemActions[{index}]"
        reference = f"{resource.get('resourceType')}/{resource.get('id')}"
        ordered.append(reference)
        if action.get("type") != "update" or "resourceId" in action:
            problems.append(f"{path}: must be an update without resourceId")
        if not isinstance(action.get("description"), str) or not action["description"].strip():
            problems.append(f"{path}: description required")
        if reference not in drafts:
            problems.append(f"{path}: {reference} is not in draftOrders")
        else:
            problems += [f"{path}: {p}" for p in unchanged_except_coverage_information(resource, drafts[reference])]
        for e_index, extension in enumerate(extensions):
            problems += [f"{path} coverage-information[{e_index}]: {p}" for p in extension_problems(extension)]
            parts = {p.get("url"): p for p in extension.get("extension") or [] if isinstance(p, dict)}
            ids_by_coverage[_coverage_of(extension)].add((parts.get("coverage-assertion-id") or {}).get("valueString"))
    for reference in {r for r in ordered if ordered.count(r) > 1}:
        problems.append(f"{reference}: more than one coverage-information action (CRD resp-29)")
    if expected_orders is not None and sorted(set(ordered)) != sorted(set(expected_orders)):
        problems.append(f"coverage-information actions for {sorted(set(ordered))}, expected {sorted(set(expected_orders))}")
    for coverage, ids in ids_by_coverage.items():
        if len(ids) != 1:
            problems.append(f"{coverage}: {len(ids)} distinct coverage-assertion-ids, exactly one expected")
    shared = [i for ids in ids_by_coverage.values() for i in ids]
    if len(shared) != len(set(shared)):
        problems.append("one coverage-assertion-id used for different coverages (CRD resp-32)")
    return problems


def check_coverage_information(response: dict, draft_orders, expected_orders: Iterable[str] | None = None) -> None:
    problems = coverage_information_problems(response, draft_orders, expected_orders)
    assert not problems, "coverage-information check failed:\n  " + "\n  ".join(problems)


def _coverage_of(extension: dict) -> str | None:
    for part in extension.get("extension") or []:
        if isinstance(part, dict) and part.get("url") == "coverage":
            reference = (part.get("valueReference") or {}).get("reference")
            return "/".join(reference.split("/")[-2:]) if reference else None
    return None


def _resources(draft_orders) -> list[dict]:
    if isinstance(draft_orders, dict):
        return [e.get("resource") for e in draft_orders.get("entry") or [] if isinstance(e, dict) and e.get("resource")]
    return list(draft_orders)
