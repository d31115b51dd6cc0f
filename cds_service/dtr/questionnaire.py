"""A DTR standard Questionnaire for each policy, generated from its loaded ``Policy`` model: no form is
written by hand, and an edit of a policy file is an edit of its form.

Shape (Da Vinci DTR 2.2 ``dtr-std-questionnaire``, R4 item types only):

- canonical ``[base]/Questionnaire/<policy slug>`` (``CP.PHAR.481`` -> ``cp-phar-481``); ``version`` is
  the policy's version plus a hash of the generated content (all but the deployment's base URL), so
  any change of the form changes the version and equal content always has equal version, wherever it
  is served (the output is a pure function of the policy);
- one ``group`` per criterion, in the policy's order (the initial criteria, the continued-therapy
  criterion, then the section III exclusions), ``linkId`` and ``prefix`` = the criterion id, ``text`` =
  the policy's words. A criterion with a check of its own asks ``<id>.met`` (boolean: is it met?) and
  ``<id>.evidence`` (text, prompted by the criterion's ``documentation``); a group without a check of
  its own shows its documentation as a ``display`` item, then its parts as sub-groups. For an exclusion,
  "met" means the request is clear of it, and the question says so;
- inside an ``any`` group one branch suffices: branch k is enabled only while no earlier branch is
  satisfied by the answers (``enableWhenExpression``, FHIRPath over ``%resource``), and questions under
  an ``any``/``n_of`` group are not ``required`` (the clinician answers the branch that applies);
- facts the EHR itself can supply without CQL get a ``<id>.fact`` item with an ``initialExpression``
  (``EHR_FACTS``: the member's birth date for an age check, via the ``patient`` launch context). The
  answers the payer prefills (``.met``, ``.evidence``) never carry an initial expression: DTR clients and
  LHC-Forms let such an expression overwrite a prefilled answer (DTR spec-73).

Every expression is FHIRPath labelled ``text/fhirpath`` (DTR 2.2 spec-60/61); no CQL library is
shipped (docs/dtr.md says why). The tocilizumab allowance is not part of the CAR-T form.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

from policies import Criterion, Policy

FHIR_BASE_PATH = "/fhir"  # where the DTR operations and forms are served, under the public base URL
DTR_STD_QUESTIONNAIRE = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-std-questionnaire"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
LAUNCH_CONTEXT_URL = SDC + "sdc-questionnaire-launchContext"
INITIAL_EXPRESSION_URL = SDC + "sdc-questionnaire-initialExpression"
ENABLE_WHEN_EXPRESSION_URL = SDC + "sdc-questionnaire-enableWhenExpression"
LAUNCH_CONTEXT_CODES = "http://hl7.org/fhir/uv/sdc/CodeSystem/launchContext"
FHIRPATH = "text/fhirpath"
HASH_LENGTH = 8
MET_QUESTION = "Is this criterion met?"
OWN_MET_QUESTION = "Is this criterion met? (Its parts are asked separately below.)"
EXCLUSION_QUESTION = "Is the request clear of this exclusion (the exclusion does not apply)?"
EVIDENCE_FALLBACK = "Evidence supporting the answer"
_FHIR_DATE = re.compile(r"^\d{4}(-\d{2}){0,2}$")  # the policy's review date: YYYY, YYYY-MM or YYYY-MM-DD


@dataclass(frozen=True)
class EhrFact:
    """A fact a DTR client can read from the EHR itself with FHIRPath (no CQL): the input of a check."""

    item_type: str
    text: str
    expression: str  # FHIRPath over the launch context
    launch_context: str  # the SDC launchContext code the expression needs


# Check name -> the EHR fact behind it. Only facts plain FHIRPath reads reliably belong here.
EHR_FACTS = {
    "age_at_least": EhrFact("date", "Member's date of birth (filled from the EHR)", "%patient.birthDate", "patient"),
}


def met_link(criterion_id: str) -> str:
    return f"{criterion_id}.met"


def evidence_link(criterion_id: str) -> str:
    return f"{criterion_id}.evidence"


def fact_link(criterion_id: str) -> str:
    return f"{criterion_id}.fact"


def documentation_link(criterion_id: str) -> str:
    return f"{criterion_id}.documentation"


def policy_slug(policy: Policy) -> str:
    """``CP.PHAR.481`` -> ``cp-phar-481``: a FHIR id (``[A-Za-z0-9\\-.]{1,64}``) readable in a URL."""
    slug = re.sub(r"[^a-z0-9]+", "-", policy.id.lower()).strip("-")
    if not slug or len(slug) > 64:
        raise ValueError(f"policy id {policy.id!r} gives no usable Questionnaire id")
    return slug


def canonical_url(policy: Policy, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/Questionnaire/{policy_slug(policy)}"


def form_canonicals(policies: Iterable[Policy], public_base_url: str | None) -> dict[str, str]:
    """Policy id -> the canonical of its form under this service's public FHIR base, for the CRD
    coverage-information. Empty without ``CART_CDS_PUBLIC_BASE_URL``: a canonical stays in the EHR's
    order, so it must be the service's configured public identity, never the request's ``Host``
    (which the client chooses)."""
    if not public_base_url:
        return {}
    return {policy.id: canonical_url(policy, public_base_url.rstrip("/") + FHIR_BASE_PATH) for policy in policies}


def questionnaires(policies: Iterable[Policy], base_url: str) -> dict[str, dict]:
    """The Questionnaire of each policy, by policy id."""
    return {policy.id: questionnaire(policy, base_url) for policy in policies}


def questionnaire(policy: Policy, base_url: str) -> dict:
    """The DTR standard Questionnaire of ``policy`` with canonical under ``base_url`` (the FHIR base of
    this payer service)."""
    items = [_criterion_item(policy.initial, MET_QUESTION, optional=False),
             _criterion_item(policy.continued, MET_QUESTION, optional=False),
             *(_criterion_item(c, EXCLUSION_QUESTION, optional=False) for c in policy.exclusions)]
    _require_unique_links(items)
    contexts = sorted({EHR_FACTS[c.check].launch_context for c in _asked(policy) if c.check in EHR_FACTS})
    body = {
        "resourceType": "Questionnaire",
        "id": policy_slug(policy),
        "meta": {"profile": [DTR_STD_QUESTIONNAIRE]},
        "extension": [_launch_context(name) for name in contexts],
        "url": canonical_url(policy, base_url),
        "name": _computable_name(policy.id),
        "title": f"{policy.title}: documentation ({policy.id})",
        "status": "active",
        "subjectType": ["Patient"],
        "effectivePeriod": {"start": policy.last_review} if _FHIR_DATE.match(policy.last_review) else None,
        "item": items,
    }
    body = {key: value for key, value in body.items() if value}
    version = f"{policy.version}-{content_hash({k: v for k, v in body.items() if k != 'url'})}"
    return {**body, "version": version, "text": _narrative(policy, version)}


def content_hash(resource: dict) -> str:
    """A short hash of the canonical JSON of ``resource`` (sorted keys, no whitespace)."""
    canonical = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def _asked(policy: Policy) -> Iterable[Criterion]:
    for root in policy.required:
        yield from root.walk()


def _criterion_item(node: Criterion, question: str, optional: bool) -> dict:
    """The group of one criterion: its own question (when it has a check), then its parts."""
    items = []
    if node.check:
        fact = EHR_FACTS.get(node.check)
        if fact is not None:
            items.append(_fact_item(node.id, fact))
        own_question = OWN_MET_QUESTION if node.children else question
        met = {"linkId": met_link(node.id), "type": "boolean", "text": own_question}
        items.append(met if optional else {**met, "required": True})
        items.append({"linkId": evidence_link(node.id), "type": "text",
                      "text": f"Documentation: {node.documentation}" if node.documentation else EVIDENCE_FALLBACK})
    elif node.documentation:
        items.append({"linkId": documentation_link(node.id), "type": "display",
                      "text": f"Documentation: {node.documentation}"})
    branch_optional = optional or node.logic in ("any", "n_of")
    parts = [_criterion_item(child, question, branch_optional) for child in node.children]
    if node.logic == "any":
        for k in range(1, len(parts)):
            earlier = " or ".join(f"({satisfied_expression(c)})" for c in node.children[:k])
            parts[k]["extension"] = [{"url": ENABLE_WHEN_EXPRESSION_URL,
                                      "valueExpression": {"language": FHIRPATH, "expression": f"({earlier}).not()"}}]
    return {"linkId": node.id, "prefix": node.id, "type": "group", "text": node.text, "item": items + parts}


def satisfied_expression(node: Criterion) -> str:
    """FHIRPath, over the QuestionnaireResponse as ``%resource``, that is true when the answers show
    ``node`` met: its own ``.met`` answered true (if it has a check) and its parts combined by its logic.
    An unanswered question is not true, so an unknown part never satisfies a branch."""
    terms = []
    if node.check:
        terms.append(f"%resource.repeat(item).where(linkId = {_literal(met_link(node.id))})"
                     ".answer.where(value = true).exists()")
    if node.children:
        parts = [f"({satisfied_expression(child)})" for child in node.children]
        if node.logic == "all":
            terms.append(" and ".join(parts))
        elif node.logic == "any":
            terms.append(" or ".join(parts))
        else:  # n_of
            terms.append(f"({' + '.join(f'iif({p}, 1, 0)' for p in parts)}) >= {node.n}")
    return " and ".join(f"({t})" for t in terms) if len(terms) > 1 else terms[0]


def _fact_item(criterion_id: str, fact: EhrFact) -> dict:
    return {"linkId": fact_link(criterion_id), "type": fact.item_type, "text": fact.text,
            "extension": [{"url": INITIAL_EXPRESSION_URL,
                           "valueExpression": {"language": FHIRPATH, "expression": fact.expression}}]}


def _launch_context(name: str) -> dict:
    return {"url": LAUNCH_CONTEXT_URL, "extension": [
        {"url": "name", "valueCoding": {"system": LAUNCH_CONTEXT_CODES, "code": name}},
        {"url": "type", "valueCode": name.capitalize()}]}


def _literal(text: str) -> str:
    """A FHIRPath string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _computable_name(policy_id: str) -> str:
    """A FHIR computable name (``[A-Z]([A-Za-z0-9_]){0,254}``): ``CP.PHAR.481`` -> ``CPPHAR481``."""
    name = re.sub(r"[^A-Za-z0-9_]", "", policy_id)
    return name if name[:1].isalpha() and name[:1].isupper() else "Q" + name


def _require_unique_links(items: list[dict]) -> None:
    seen: set[str] = set()

    def walk(item: dict) -> None:
        if item["linkId"] in seen:
            raise ValueError(f"criterion ids give the linkId {item['linkId']!r} twice")
        seen.add(item["linkId"])
        for child in item.get("item", ()):
            walk(child)

    for item in items:
        walk(item)


def _narrative(policy: Policy, version: str) -> dict:
    div = (f'<div xmlns="http://www.w3.org/1999/xhtml"><p>Documentation template for {escape(policy.title)} '
           f'({escape(policy.id)}), version {escape(version)}, generated from the policy criteria.</p></div>')
    return {"status": "generated", "div": div}
