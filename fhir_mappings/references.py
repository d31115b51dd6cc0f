"""FHIR references: how a Reference is written and what it points to, in one place.

A FHIR R4 ``Reference.reference`` (https://hl7.org/fhir/R4/references.html) takes one of four forms, and
EHRs send all of them:

- relative RESTful ``Type/id``, optionally versioned ``Type/id/_history/vid``: a resource on the same server;
- absolute RESTful ``https://server/base/Type/id``: a resource on that server (which server may be read
  with the hook's token is the service's decision, not this module's);
- ``urn:uuid:...`` (or ``urn:oid:``): the ``fullUrl`` of an entry of the same Bundle;
- ``#id``: a resource ``contained`` in the referring resource.

A FHIR id is 1 to 64 letters, digits, ``-`` and ``.`` (R4 datatype ``id``); a resource type is a
PascalCase name. A version in a reference names a past state of the same resource, so resolving ignores
it: the record holds one version of each resource (the latest it was sent).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from typing import Any

FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"  # the R4 ``id`` datatype's regex
_ID = re.compile(FHIR_ID)
_RESTFUL = re.compile(rf"(?:.*/)?([A-Z][A-Za-z]+)/({FHIR_ID})(?:/_history/{FHIR_ID})?")
_RELATIVE = re.compile(rf"([A-Z][A-Za-z]+)/({FHIR_ID})(?:/_history/{FHIR_ID})?")

Resolver = Callable[[Any], "dict | None"]


def is_fhir_id(value: Any) -> bool:
    """Whether ``value`` is a FHIR id (``[A-Za-z0-9\\-.]{1,64}``)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def reference_string(reference: Any) -> str | None:
    """The trimmed ``reference`` of a Reference (or a reference string), None when there is none."""
    if isinstance(reference, dict):
        reference = reference.get("reference")
    return reference.strip() if isinstance(reference, str) and reference.strip() else None


def parse_reference(reference: Any) -> tuple[str, str] | None:
    """(type, id) of a relative or absolute RESTful reference (``_history`` ignored), else None
    (``#contained``, ``urn:uuid:``, anything malformed)."""
    match = _RESTFUL.fullmatch(reference) if isinstance(reference, str) else None
    return (match.group(1), match.group(2)) if match else None


def relative_reference(reference: Any, types: Collection[str] | None = None) -> str | None:
    """``Type/id`` when ``reference`` is a relative RESTful reference (``_history`` dropped), of one of
    ``types`` when given; None for an absolute URL, a local reference or anything malformed."""
    match = _RELATIVE.fullmatch(reference) if isinstance(reference, str) else None
    if match is None or (types is not None and match.group(1) not in types):
        return None
    return f"{match.group(1)}/{match.group(2)}"


def is_local(reference: str) -> bool:
    """Whether a reference string points inside what was sent with it: ``#contained`` or a Bundle
    entry's ``urn:`` fullUrl. Such a reference is never read from a server."""
    return reference.startswith(("#", "urn:"))


def contained(container: Any, reference: str) -> dict | None:
    """The resource ``#id`` names among ``container``'s ``contained`` resources, else None."""
    if not reference.startswith("#") or not isinstance(container, dict):
        return None
    for resource in container.get("contained") or ():
        if isinstance(resource, dict) and resource.get("id") == reference[1:]:
            return resource
    return None


def resource_reference(resource: Any) -> str | None:
    """``Type/id`` of a resource as sent, None when it has no type or no id."""
    if not isinstance(resource, dict):
        return None
    kind, rid = resource.get("resourceType"), resource.get("id")
    return f"{kind}/{rid}" if isinstance(kind, str) and isinstance(rid, str) and rid else None


def resolver(resources: Iterable[Any]) -> Resolver:
    """A function finding the resource a Reference (or reference string) names among ``resources`` by its
    ``Type/id``, whether the reference is relative or absolute (any base, ``_history`` ignored)."""
    known = {ref: r for r in resources if (ref := resource_reference(r)) is not None}

    def resolve(reference: Any) -> dict | None:
        parsed = parse_reference(reference_string(reference))
        return known.get(f"{parsed[0]}/{parsed[1]}") if parsed else None

    return resolve
