"""Load policy files once at start-up: schema, named checks, ids and value sets, or a clear failure.

Every problem is reported with the file name and the JSON pointer of the offending node, e.g.
``cp-phar-481-idecabtagene-vicleucel.yaml: /initial_approval/children/3/children/0/params/min_g_dl:
'0.5' is not of type 'number'``. Nothing here runs at request time: the service loads its policies when
it starts and keeps the returned ``Policy`` values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import yaml

from fhir_mappings.facts import Coded
from fhir_mappings.terminology import all_value_sets, use_value_set_directory
from policies.checks import check_names, get_check
from policies.decision import ApprovalTerms
from policies.model import Criterion, Policy, Product, ReferralRule, Referrals


@dataclass(frozen=True)
class PolicyFileError:
    file: str
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.pointer or '/'}: {self.message}"


class PolicyLoadError(ValueError):
    """One or more policy files are invalid; ``errors`` lists each problem with file and pointer."""

    def __init__(self, errors: Iterable[PolicyFileError]):
        self.errors = tuple(errors)
        super().__init__("invalid policy file(s):\n" + "\n".join(f"  {e}" for e in self.errors))


def _pointer(parts: Iterable[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@cache
def _schema_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((resources.files("policies") / "policy.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _nodes(data: dict) -> Iterator[tuple[dict, str]]:
    """Every criterion node of a (schema-valid) file with its JSON pointer."""

    def walk(node: dict, pointer: str) -> Iterator[tuple[dict, str]]:
        yield node, pointer
        for i, child in enumerate(node.get("children", ())):
            yield from walk(child, f"{pointer}/children/{i}")

    yield from walk(data["initial_approval"], "/initial_approval")
    yield from walk(data["continued_therapy"]["criterion"], "/continued_therapy/criterion")
    for i, node in enumerate(data["exclusions"]["criteria"]):
        yield from walk(node, f"/exclusions/criteria/{i}")
    yield from walk(data["approval"]["tocilizumab"], "/approval/tocilizumab")


class _TextDates(yaml.SafeLoader):
    """YAML without its timestamp type: an unquoted ``2026-03-26`` stays the text the schema checks (so
    an analyst may quote dates or not), and ``2026-02-30`` is reported at its pointer, not as a crash."""


_TextDates.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _in_force_errors(in_force: dict) -> Iterator[tuple[str, str]]:
    dates = {}
    for key in ("from", "until"):
        if key in in_force:
            try:
                dates[key] = date.fromisoformat(in_force[key])
            except ValueError:
                yield f"/policy/in_force/{key}", f"{in_force[key]!r} is not a calendar date"
    if len(dates) == 2 and dates["until"] < dates["from"]:
        yield "/policy/in_force/until", "is before 'from'"


def _semantic_errors(data: dict, known_value_sets: frozenset[str]) -> Iterator[tuple[str, str]]:
    """(pointer, message) for what JSON Schema cannot say: registered checks and their parameters,
    unique and nested ids, existing value sets and referral targets, real dates."""
    yield from _in_force_errors(data["policy"]["in_force"])
    seen: dict[str, str] = {}
    ids = {data["other_diagnoses"]["id"], data["continued_therapy"]["other_diagnoses"]["id"]}
    for node, pointer in _nodes(data):
        if node["id"] in seen:
            yield f"{pointer}/id", f"duplicate criterion id {node['id']!r} (also at {seen[node['id']]})"
        seen.setdefault(node["id"], pointer)
        for i, child in enumerate(node.get("children", ())):
            if not child["id"].startswith(node["id"] + "."):
                yield f"{pointer}/children/{i}/id", f"id {child['id']!r} is not numbered under {node['id']!r}"
        if "check" in node:
            yield from _check_errors(node, pointer, known_value_sets)
    ids |= set(seen)
    target = data["other_diagnoses"].get("applies_when_not_met")
    if target is not None and target not in ids:
        yield "/other_diagnoses/applies_when_not_met", f"no criterion {target!r} in this policy"
    if data["product"]["value_set"] not in known_value_sets:
        yield "/product/value_set", f"unknown value set {data['product']['value_set']!r}"
    lobs = set(data["policy"]["lines_of_business"])
    for section in ("/other_diagnoses", "/continued_therapy/other_diagnoses"):
        referrals = data["other_diagnoses"] if section == "/other_diagnoses" else data["continued_therapy"]["other_diagnoses"]
        for i, rule in enumerate(referrals["rules"]):
            missing = sorted(lobs - set(rule["policies"]))
            if missing:
                yield f"{section}/rules/{i}/policies", f"no referral policy for line(s) of business {missing}"


def _check_errors(node: dict, pointer: str, known_value_sets: frozenset[str]) -> Iterator[tuple[str, str]]:
    name = node["check"]
    if name not in check_names():
        yield f"{pointer}/check", f"unknown check {name!r} (known: {', '.join(sorted(check_names()))})"
        return
    spec = get_check(name)
    params = node.get("params", {})
    for error in jsonschema.Draft202012Validator(spec.params_schema).iter_errors(params):
        yield f"{pointer}/params{_pointer(error.absolute_path)}", error.message
    for key in spec.value_set_params:
        value = params.get(key)
        for vs_id in [value] if isinstance(value, str) else value or ():
            if vs_id not in known_value_sets:
                yield f"{pointer}/params/{key}", f"unknown value set {vs_id!r}"


def _criterion(node: dict, pointer: str) -> Criterion:
    return Criterion(
        id=node["id"],
        text=node["text"],
        pointer=pointer,
        check=node.get("check"),
        params=MappingProxyType(dict(node.get("params", {}))),
        logic=node.get("logic"),
        n=node.get("n"),
        documentation=node.get("documentation"),
        children=tuple(_criterion(c, f"{pointer}/children/{i}") for i, c in enumerate(node.get("children", ()))),
    )


def _referrals(data: dict) -> Referrals:
    rules = tuple(
        ReferralRule(r["criterion"], r["kind"], MappingProxyType(dict(r["policies"]))) for r in data["rules"]
    )
    return Referrals(data["id"], data["text"], rules)


def _build(data: dict, source: str) -> Policy:
    meta, product, approval = data["policy"], data["product"], data["approval"]
    toc = approval["tocilizumab"]
    return Policy(
        id=meta["id"],
        title=meta["title"],
        version=meta["version"],
        effective=meta["effective"],
        in_force_from=date.fromisoformat(meta["in_force"]["from"]),
        in_force_until=date.fromisoformat(meta["in_force"]["until"]) if "until" in meta["in_force"] else None,
        last_review=meta["last_review"],
        lines_of_business=tuple(meta["lines_of_business"]),
        product=Product(
            display=product["display"],
            names=tuple(n.lower() for n in product["names"]),
            codes=tuple(Coded(c["system"], c["code"], c.get("display")) for c in product["codes"]),
            value_set=product["value_set"],
        ),
        initial=_criterion(data["initial_approval"], "/initial_approval"),
        continued=_criterion(data["continued_therapy"]["criterion"], "/continued_therapy/criterion"),
        exclusions=tuple(
            _criterion(c, f"/exclusions/criteria/{i}") for i, c in enumerate(data["exclusions"]["criteria"])
        ),
        other_diagnoses=_referrals(data["other_diagnoses"]),
        continued_other_diagnoses=_referrals(data["continued_therapy"]["other_diagnoses"]),
        referral_when_not_met=data["other_diagnoses"].get("applies_when_not_met", ""),
        approval=ApprovalTerms(
            duration_months=approval["duration_months"],
            doses=approval["doses"],
            tocilizumab_max_doses=toc["params"]["max_doses"],
            tocilizumab_max_mg_per_dose=float(toc["params"]["max_mg_per_dose"]),
            pdac_review_required=approval["pdac_review_required"],
            hcpcs=tuple(approval["hcpcs"]),
        ),
        tocilizumab=_criterion(toc, "/approval/tocilizumab"),
        source=source,
    )


def parse_policy(text: str, source: str, known_value_sets: frozenset[str] | None = None) -> Policy:
    """Validate and build one policy from YAML text; ``source`` names the file in errors."""
    try:
        data = yaml.load(text, Loader=_TextDates)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyLoadError([PolicyFileError(source, "", f"not valid YAML{where}")]) from None
    schema_errors = sorted(_schema_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if schema_errors:
        raise PolicyLoadError(PolicyFileError(source, _pointer(e.absolute_path), e.message) for e in schema_errors)
    if known_value_sets is None:
        known_value_sets = frozenset(all_value_sets())
    problems = list(_semantic_errors(data, known_value_sets))
    if problems:
        raise PolicyLoadError(PolicyFileError(source, p, m) for p, m in problems)
    return _build(data, source)


def load_policies(directory: Path | str, known_value_sets: frozenset[str] | None = None) -> tuple[Policy, ...]:
    """Every ``*.yaml`` policy in ``directory``, validated. Several files may hold versions of one
    policy id (see ``model.in_force``), each with its own version and first day in force. All files are
    checked before failing, so one start-up shows every problem."""
    errors: list[PolicyFileError] = []
    policies: list[Policy] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            policies.append(parse_policy(path.read_text(encoding="utf-8"), path.name, known_value_sets))
        except PolicyLoadError as exc:
            errors.extend(exc.errors)
    errors.extend(_version_clashes(policies))
    if errors:
        raise PolicyLoadError(errors)
    if not policies:
        raise PolicyLoadError([PolicyFileError(str(directory), "", "no policy files (*.yaml)")])
    return tuple(policies)


def _version_clashes(policies: Iterable[Policy]) -> Iterator[PolicyFileError]:
    """Two files of one policy may not share a version name or a first day in force: either would
    leave which version decides an order to the order of the files."""
    seen: dict[tuple[str, str, Any], str] = {}
    for policy in policies:
        for field, pointer, value in (("version", "/policy/version", policy.version),
                                      ("first day in force", "/policy/in_force/from", policy.in_force_from)):
            key = (policy.id, field, value)
            if key in seen:
                yield PolicyFileError(policy.source, pointer,
                                      f"policy {policy.id} {field} {value} also in {seen[key]}")
            seen.setdefault(key, policy.source)


@cache
def shipped_policies() -> tuple[Policy, ...]:
    """The policies in ``policies/files``, loaded and validated once per process."""
    return load_policies(Path(str(resources.files("policies") / "files")))


# The value-set file format (``fhir_mappings/value_sets/*.json``) as far as the terminology reads it;
# other members (notes, sources, confidence) are documentation and pass through.
_STRING = {"type": "string", "minLength": 1}
VALUE_SET_SCHEMA = {
    "type": "object",
    "required": ["id", "title"],
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
        "title": _STRING,
        "codes": {"type": "array", "items": {"type": "object", "required": ["system", "code"],
                                             "properties": {"system": _STRING, "code": _STRING}}},
        "prefixes": {"type": "array", "items": {"type": "object", "required": ["system", "prefix"],
                                                "properties": {"system": _STRING, "prefix": _STRING}}},
        "text_terms": {"type": "array", "items": _STRING},
        "ingredients": {"type": "object", "additionalProperties": {"type": "array", "items": _STRING}},
    },
}


def check_value_set_directory(directory: Path | str) -> None:
    """Every ``*.json`` value set of a payer's directory is JSON of the value-set format, with ids
    unique in the directory; else ``PolicyLoadError`` naming each file and JSON pointer."""
    errors: list[PolicyFileError] = []
    ids: dict[str, str] = {}
    validator = jsonschema.Draft202012Validator(VALUE_SET_SCHEMA)
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            errors.append(PolicyFileError(path.name, "", f"not valid JSON: {exc}"))
            continue
        problems = list(validator.iter_errors(data))
        errors.extend(PolicyFileError(path.name, _pointer(e.absolute_path), e.message) for e in problems)
        if not problems and data["id"] in ids:
            errors.append(PolicyFileError(path.name, "/id", f"value set {data['id']!r} also in {ids[data['id']]}"))
        if not problems:
            ids.setdefault(data["id"], path.name)
    if errors:
        raise PolicyLoadError(errors)


def configured_policies(policy_dir: Path | None, value_set_dir: Path | None) -> tuple[Policy, ...]:
    """The policies a service runs with: the payer's directories when configured, else those shipped.

    The value sets come first (the policies name them): the directory is checked, then added to the
    shipped value sets process-wide. Every version of every policy is returned; ``model.in_force`` picks
    the ones in force on an order's date."""
    if value_set_dir is not None:
        check_value_set_directory(value_set_dir)
    use_value_set_directory(value_set_dir)
    return load_policies(policy_dir) if policy_dir is not None else shipped_policies()

