"""What the EHR sent in ``prefetch``, key by key: pure interpretation, no I/O.

CDS Hooks gives each prefetch value a meaning, and getting it wrong either wastes the time budget
(re-querying data the EHR said does not exist) or silently evaluates a partial record:

- **present**: a resource of the key's type, or a searchset Bundle whose matches are that type (an
  empty Bundle means "no data", just like ``null``). A Bundle with a ``next`` link was paginated by the
  EHR; the link is reported so retrieval can follow it.
- **no-data**: the value is ``null``. The EHR ran the query and found nothing: do not query.
- **not-satisfied**: an OperationOutcome (the EHR's prefetch failed), or anything that is not the FHIR
  the key asks for (an HTML page, a string, a resource of another type, a Bundle whose ``self`` link
  shows another query or another patient). Query for it.
- **absent**: the key is missing. Query for it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from cds_service.retrieval.fhir_client import NotFhir, search_page
from fhir_mappings import DataRequirement, data_requirements

PREFETCH_BUNDLE_TYPES = ("searchset", "collection")


class PrefetchState(str, enum.Enum):
    PRESENT = "present"
    NO_DATA = "no-data"
    NOT_SATISFIED = "not-satisfied"
    ABSENT = "absent"


@dataclass(frozen=True)
class PrefetchItem:
    """One key's interpretation. ``reason`` says why a value was not usable (``operation-outcome``,
    ``not-fhir``, ``wrong-type``, ``other-resource`` (a read key holding another resource than
    the context names), ``other-patient``, ``other-query`` (a Bundle's self link)); ``next_url`` is the Bundle's
    ``next`` link when the EHR paginated it."""

    key: str
    state: PrefetchState
    resources: tuple[dict, ...] = ()
    next_url: str | None = None
    reason: str | None = None

    @property
    def needs_query(self) -> bool:
        return self.state in (PrefetchState.NOT_SATISFIED, PrefetchState.ABSENT)


def expected_types(requirement: DataRequirement) -> tuple[str, ...]:
    """Resource types a key may hold: ``{{context.userId}}`` names a Practitioner or a PractitionerRole."""
    if requirement.read_token == "userId":
        return ("Practitioner", "PractitionerRole")
    return (requirement.resource_type,)


def interpret_prefetch(prefetch: Mapping[str, object] | None, context: Mapping[str, str | None]) -> dict[str, PrefetchItem]:
    """Every declared key, interpreted. ``context`` holds patientId/userId/encounterId."""
    prefetch = prefetch if isinstance(prefetch, Mapping) else {}
    return {req.key: interpret(req, prefetch, context) for req in data_requirements()}


def interpret(requirement: DataRequirement, prefetch: Mapping[str, object], context: Mapping[str, str | None]) -> PrefetchItem:
    key = requirement.key
    if key not in prefetch:
        return PrefetchItem(key, PrefetchState.ABSENT)
    value = prefetch[key]
    if value is None:
        return PrefetchItem(key, PrefetchState.NO_DATA)

    def unusable(reason: str) -> PrefetchItem:
        return PrefetchItem(key, PrefetchState.NOT_SATISFIED, reason=reason)

    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return unusable("not-fhir")
    kind = value["resourceType"]
    expected = expected_types(requirement)
    if kind == "OperationOutcome":
        return unusable("operation-outcome")
    if kind in expected:
        if not _is_context_resource(requirement, value, context):
            return unusable("other-resource")
        return PrefetchItem(key, PrefetchState.PRESENT, (value,))
    if kind != "Bundle":
        return unusable("wrong-type")
    try:
        resources, next_url = search_page(value, expected, PREFETCH_BUNDLE_TYPES)
    except NotFhir:
        return unusable("wrong-type")
    mismatch = _self_link_mismatch(value, requirement.resource_type, context.get("patientId"))
    if mismatch:
        return unusable(mismatch)
    return PrefetchItem(key, PrefetchState.PRESENT, tuple(resources), next_url)


def _is_context_resource(requirement: DataRequirement, resource: dict, context: Mapping[str, str | None]) -> bool:
    """A read key must hold the resource the context names (when the resource says which it is)."""
    if not requirement.is_read or "id" not in resource:
        return True
    wanted = context.get(requirement.read_token or "")
    if not isinstance(wanted, str):
        return True
    actual = f"{resource['resourceType']}/{resource['id']}" if requirement.read_token == "userId" else resource["id"]
    return actual == wanted.strip()


def _self_link_mismatch(bundle: dict, resource_type: str, patient_id: str | None) -> str | None:
    """Check the Bundle's ``self`` link (when given) ran a search of this type for this patient."""
    url = next(
        (link.get("url") for link in bundle.get("link", []) if isinstance(link, dict) and link.get("relation") == "self"),
        None,
    )
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s and s != "_search"]
    if "_getpages" not in parts.query and segments and segments[-1] != resource_type:
        return "other-query"
    query = parse_qs(parts.query)
    for name in ("patient", "subject", "patient:Patient", "subject:Patient"):
        for value in query.get(name, []):
            if patient_id and value.removeprefix("Patient/") != patient_id:
                return "other-patient"
    return None
