"""Policy test cases as data: recorded hook requests with the decision a policy analyst expects.

A policy analyst who changes a threshold wants to see which decisions change before the new file is
deployed. A case file (JSON) names one or more hook files and what the service must answer for them:

    {"asOf": "2026-11-24",                      decision date (the case's hooks are decided as of it)
     "hooks": ["case-prefetch.json"],           hook files, relative to the hooks directory
     "order": "MedicationRequest/x",            the order judged ...
     "verdict": "meets-policy",                 ... its verdict ...
     "criteria": {"I.A.4.a.i": "met"},          ... and the status of each criterion that decides it
     "policy": "CP.PHAR.481",                   optional: the policy ...
     "policyVersion": "2026-05",                optional: ... and the version in force that must decide it
     "tocilizumab": {"order": ..., "verdict": ..., "criteria": {...}}}   optional: a co-signed order

Other members (summary, rationale, ...) are documentation. The sandbox's ``expected/*.json`` files are
such cases. A response matches when the ``cart-cds.decision`` extension of the card for each named order
has that verdict (policy, version) and those statuses; criteria a case does not name are not compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema

from cds_service.errors import RequestError
from cds_service.offline_evaluation import (
    error_message,
    evaluate_request,
    settings_for_fhir_server,
)
from cds_service.order_sign import OrderSignService
from cds_service.response.cards import card_decision
from cds_service.settings import Settings

_STATUS = {"enum": ["met", "not-met", "unknown"]}
_VERDICT = {"enum": ["meets-policy", "does-not-meet", "documentation-incomplete", "indeterminate"]}
_ORDER = {"type": "string", "pattern": "^[A-Za-z]+/.+"}
_EXPECTATION: dict[str, Any] = {
    "type": "object",
    "required": ["order", "verdict", "criteria"],
    "properties": {"order": _ORDER, "verdict": _VERDICT, "criteria": {"type": "object", "additionalProperties": _STATUS},
                   "policy": {"type": "string"}, "policyVersion": {"type": "string"}},
}
CASE_SCHEMA = {
    **_EXPECTATION,
    "required": [*_EXPECTATION["required"], "asOf", "hooks"],
    "properties": {
        **_EXPECTATION["properties"],
        "asOf": {"type": "string"},  # a calendar date: checked by read_case
        "hooks": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        "tocilizumab": _EXPECTATION,
    },
}


class CaseFileError(ValueError):
    """A case file is not a valid case: the message names the file and the JSON pointer."""


# --------------------------------------------------------------------------------------------------
# Comparing a response with an expectation
# --------------------------------------------------------------------------------------------------


def decisions(response: dict) -> dict[str, dict]:
    """order reference -> decision extension, from every card that carries one."""
    out = {}
    for card in response.get("cards", ()):
        decision = card_decision(card)
        if decision is not None and decision.get("order"):
            out[decision["order"]] = decision
    return out


def _compare(label: str, want: dict, found: dict[str, dict]) -> list[str]:
    decision = found.get(want["order"])
    if decision is None:
        return [f"{label}: no decision for {want['order']}"]
    problems = [
        f"{label}: {key} {decision.get(key)!r}, expected {want[key]!r}"
        for key in ("verdict", "policy", "policyVersion")
        if key in want and decision.get(key) != want[key]
    ]
    statuses = {c.get("id"): c.get("status") for c in decision.get("criteria", ())}
    for cid, status in want["criteria"].items():
        if statuses.get(cid) != status:
            problems.append(f"{label}: {cid} is {statuses.get(cid)!r}, expected {status!r}")
    return problems


def mismatches(expected: dict, response: dict) -> list[str]:
    """Human-readable differences between a case (or sandbox expected file) and a hook response
    (empty = match)."""
    found = decisions(response)
    problems = _compare("CAR-T order", expected, found)
    if expected.get("tocilizumab"):
        problems += _compare("tocilizumab order", expected["tocilizumab"], found)
    return problems


def deciding_criteria(decision: dict) -> list[str]:
    """The criteria that decide a verdict, for display: not-met ones, else unknown ones."""
    criteria = decision.get("criteria", ())
    for status in ("not-met", "unknown"):
        ids = [c["id"] for c in criteria if c.get("status") == status]
        if ids:
            return ids
    return []


# --------------------------------------------------------------------------------------------------
# Running a suite
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseResult:
    case: str  # case file name
    hook: str  # hook file name
    verdict: str  # the CAR-T order's actual verdict ("-" when none)
    deciding: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


def read_case(path: Path) -> dict:
    try:
        case = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaseFileError(f"{path.name}: /: not a readable JSON file ({exc})") from None
    errors = sorted(jsonschema.Draft202012Validator(CASE_SCHEMA).iter_errors(case), key=lambda e: list(e.absolute_path))
    if errors:
        pointer = "".join(f"/{p}" for p in errors[0].absolute_path) or "/"
        raise CaseFileError(f"{path.name}: {pointer}: {errors[0].message}")
    try:
        date.fromisoformat(case["asOf"])
    except ValueError:
        raise CaseFileError(f"{path.name}: /asOf: {case['asOf']!r} is not a calendar date") from None
    return case


def run_case(case_file: Path, case: dict, hooks_dir: Path, service: OrderSignService,
             fhir_server: str | None = None) -> list[CaseResult]:
    """Every hook of one case through the order-sign use case, compared with the case."""
    results = []
    for name in case["hooks"]:
        try:
            body = (hooks_dir / name).read_bytes()
            response = evaluate_request(body, service=service, as_of=date.fromisoformat(case["asOf"]),
                                        fhir_server=fhir_server)
        except OSError as exc:
            results.append(CaseResult(case_file.name, name, "-", (), (f"hook file not readable: {exc.strerror}",)))
            continue
        except RequestError as exc:
            message = error_message(exc, fhir_server_option=fhir_server is not None)
            results.append(CaseResult(case_file.name, name, "-", (), (f"request refused: {message}",)))
            continue
        decision = decisions(response).get(case["order"], {})
        results.append(CaseResult(case_file.name, name, decision.get("verdict", "-"),
                                  tuple(deciding_criteria(decision)), tuple(mismatches(case, response))))
    return results


def run_suite(cases_dir: Path, settings: Settings, hooks_dir: Path | None = None,
              fhir_server: str | None = None) -> list[CaseResult]:
    """Every ``*.json`` case in ``cases_dir`` with one service built from ``settings`` (its policy and
    value-set directories are the ones under test). Raises ``CaseFileError`` for a malformed case and
    the loader's error for a bad policy directory, before any hook runs."""
    cases = [(path, read_case(path)) for path in sorted(Path(cases_dir).glob("*.json"))]
    if not cases:
        raise CaseFileError(f"{cases_dir}: no case files (*.json)")
    service = OrderSignService.from_settings(settings_for_fhir_server(settings, fhir_server))
    try:
        return [result for path, case in cases
                for result in run_case(path, case, hooks_dir or path.parent, service, fhir_server)]
    finally:
        service.session.close()
