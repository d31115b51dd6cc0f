"""FHIR search semantics, just enough for the queries cart-cds makes, applied to in-memory resources.

Used three ways so they cannot disagree: to build each hook's prefetch ("what that query would return"),
to generate the recorded replay responses, and by the loopback replay server for searches that were not
recorded. Supported: ``patient`` (Coverage.beneficiary or subject), ``code`` (token list ``system|code,...``),
``status``, ``_tag``, ``_sort=-date`` / ``date``, ``_count`` and ``_getpagesoffset`` paging. Anything else is
refused, as HAPI refuses unknown search parameters.
"""

from __future__ import annotations

from urllib.parse import urlencode

PAGING = ("_count", "_getpagesoffset")
SUPPORTED = {"patient", "practitioner", "code", "status", "_tag", "_sort", *PAGING}


class UnsupportedSearch(ValueError):
    """A search parameter or value this replay does not implement."""


def _reference_id(reference: str | None) -> str | None:
    if not reference:
        return None
    return reference.rsplit("/", 1)[-1]


def _patient_of(resource: dict) -> str | None:
    holder = resource.get("beneficiary") if resource.get("resourceType") == "Coverage" else resource.get("subject")
    return _reference_id((holder or {}).get("reference"))


def _has_token(concept: dict | None, tokens: list[tuple[str | None, str]]) -> bool:
    for item in (concept or {}).get("coding") or ():
        for system, code in tokens:
            if item.get("code") == code and (system is None or item.get("system") == system):
                return True
    return False


def _tokens(value: str) -> list[tuple[str | None, str]]:
    out = []
    for token in value.split(","):
        system, sep, code = token.rpartition("|")
        out.append((system if sep else None, code))
    return out


def _effective(resource: dict) -> str:
    for key in ("effectiveDateTime", "performedDateTime", "authoredOn", "onsetDateTime"):
        if resource.get(key):
            return resource[key]
    for key in ("effectivePeriod", "performedPeriod"):
        if resource.get(key, {}).get("start"):
            return resource[key]["start"]
    return ""


def matches(resource: dict, resource_type: str, params: dict[str, str]) -> bool:
    if resource.get("resourceType") != resource_type:
        return False
    for name, value in params.items():
        if name == "patient" and _patient_of(resource) != _reference_id(value):
            return False
        if name == "practitioner" and _reference_id((resource.get("practitioner") or {}).get("reference")) != _reference_id(value):
            return False
        if name == "code" and not _has_token(resource.get("code"), _tokens(value)):
            return False
        if name == "status" and resource.get("status") not in value.split(","):
            return False
        if name == "_tag" and not any(
            _has_token({"coding": [tag]}, _tokens(value)) for tag in resource.get("meta", {}).get("tag", ())
        ):
            return False
    return True


def search(resources: list[dict], resource_type: str, params: dict[str, str]) -> list[dict]:
    """The resources a FHIR server would return for ``resource_type?params``, in its order."""
    unknown = sorted(set(params) - SUPPORTED)
    if unknown:
        raise UnsupportedSearch(f"Unknown search parameter \"{unknown[0]}\" for resource type \"{resource_type}\"")
    found = [r for r in resources if matches(r, resource_type, params)]
    sort = params.get("_sort")
    if sort in ("-date", "date"):
        found.sort(key=lambda r: (_effective(r), r.get("id", "")), reverse=sort == "-date")
    elif sort:
        raise UnsupportedSearch(f"Unsupported _sort value \"{sort}\"")
    return found


def url(base: str, path: str, params: dict[str, str] | list[tuple[str, str]]) -> str:
    query = urlencode(params if isinstance(params, list) else list(params.items()))
    return f"{base}/{path}" + (f"?{query}" if query else "")


def searchset(base: str, matched: list[dict], self_url: str, next_url: str | None = None, total: int | None = None) -> dict:
    """A searchset Bundle page holding ``matched``, with absolute ``fullUrl``s under ``base``."""
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matched) if total is None else total,
        "link": [{"relation": "self", "url": self_url}],
    }
    if next_url:
        bundle["link"].append({"relation": "next", "url": next_url})
    if matched:
        bundle["entry"] = [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in matched
        ]
    return bundle


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
