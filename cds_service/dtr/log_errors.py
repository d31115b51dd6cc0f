"""DTR ``$log-questionnaire-errors`` (``POST [base]/Questionnaire/$log-questionnaire-errors``): a DTR app
reports problems it met with one of our forms, as a ``Parameters`` of ``Questionnaire`` (the form's
canonical, version-specific SHOULD) and ``OperationOutcome`` (the issues and where they occurred).

The app SHALL NOT put patient data in the outcome, but this service does not rely on it: only which of
our forms (policy id, and the version when it is the current one) and how many issues of which
codes are logged, never the text or
location of an issue. A canonical that is not ours is logged as such. The answer is an informational
OperationOutcome (the OperationDefinition defines no output).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cds_service.dtr.package import OperationError

log = logging.getLogger(__name__)
ISSUE_CODE = re.compile(r"^[a-z-]{1,40}$")


@dataclass(frozen=True)
class ErrorReport:
    policy: str | None  # the policy whose form it is, None when the canonical is not one of ours
    version: str | None  # the form version the app named: ours, "other" (an old one: never echoed) or None
    issue_codes: tuple[str, ...]


def parse_report(parameters: object, forms: Mapping[str, dict]) -> ErrorReport:
    """The report, or a 400 naming the missing input."""
    entries = parameters.get("parameter") if isinstance(parameters, dict) and \
        parameters.get("resourceType") == "Parameters" else None
    if not isinstance(entries, list):
        raise OperationError(400, "the request body must be a FHIR Parameters resource", "Parameters")
    named = {e["name"]: e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)}
    canonical = (named.get("Questionnaire") or {}).get("valueCanonical")
    outcome = (named.get("OperationOutcome") or {}).get("resource")
    if not isinstance(canonical, str) or not canonical:
        raise OperationError(400, "the Questionnaire parameter (valueCanonical) is required", "Questionnaire")
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        raise OperationError(400, "the OperationOutcome parameter must carry an OperationOutcome", "OperationOutcome")
    url, _, version = canonical.partition("|")
    policy, form = next(((pid, f) for pid, f in forms.items() if f["url"] == url), (None, None))
    named_version = None if form is None or not version else version if version == form["version"] else "other"
    issues = outcome.get("issue")
    codes = tuple(_issue_code(issue) for issue in (issues if isinstance(issues, list) else ()))
    return ErrorReport(policy, named_version, codes)


def _issue_code(issue: object) -> str:
    """An issue's code when it is a plain code word, else "other" (free text is never echoed)."""
    code = issue.get("code") if isinstance(issue, dict) else None
    return code if isinstance(code, str) and ISSUE_CODE.match(code) else "other"


def log_report(report: ErrorReport) -> dict:
    """Log ``report`` through the allow-listed fields and return the acknowledgement."""
    log.warning("DTR app reported questionnaire errors", extra={
        "policy": report.policy or "not-ours", "policyVersion": report.version, "count": len(report.issue_codes),
        "reason": "+".join(sorted(set(report.issue_codes)))[:200] or None})
    return {"resourceType": "OperationOutcome", "issue": [{
        "severity": "information", "code": "informational",
        "details": {"text": f"{len(report.issue_codes)} issue(s) received; thank you"}}]}
