"""The hook patient's record: the resources the facts may use, indexed by type, id and fullUrl.

``PatientRecord.build`` takes raw FHIR JSON exactly as received (prefetch values, fallback query
Bundles) and keeps a resource only when it is usable clinical evidence about *this* patient:

- resources in the patient compartment (anything with ``subject``/``patient``/``beneficiary``) must
  point at the hook's patient; those of another patient, a Group, or of nobody are ignored and reported;
- ``entered-in-error`` resources, refuted/entered-in-error Conditions (``verificationStatus``),
  cancelled requests and negated events (``not-done``, ``not-taken``) are dropped and reported: they
  say the thing did *not* happen;
- Observations count only when ``final``, ``amended`` or ``corrected`` (a preliminary, registered or
  ``unknown``-status result is not a result a coverage decision may rest on). This is the one place
  that rule lives: fact modules never see another status, so a later preliminary or cancelled result
  cannot hide an earlier final one. (A final result without a value, ``dataAbsentReason``, is a
  matter of the value, left to ``labs``.)

The hook's own draft orders may be in the record too (the client sends them, and an order re-signed after
an edit is already in the EHR's history): ``orders_being_signed`` names them so that fact modules never
read the order being decided as the patient's history (see ``therapy``).

Resources outside the patient compartment (Medication, Practitioner, PractitionerRole, Organization,
Location) are kept for reference resolution. Nothing is validated up front; ``well_formed`` validates
one resource on demand (see ``parsing``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fhir_mappings.facts import COMPLETE, RecordIssue, RetrievalOutcome
from fhir_mappings.parsing import Entry, MalformedResource, flatten, validate
from fhir_mappings.references import (
    contained,
    parse_reference,
    reference_string,
    resource_reference,
)
from fhir_mappings.terminology import codings_of

# Where each resource names its patient; the first field present is used.
PATIENT_LINK_FIELDS = ("subject", "patient", "beneficiary")
# Types that always belong to one patient: without a link to the hook's patient they are not used.
PATIENT_COMPARTMENT = frozenset(
    {
        "AllergyIntolerance", "CarePlan", "CareTeam", "Claim", "ClinicalImpression", "Condition",
        "Coverage", "DiagnosticReport", "DocumentReference", "Encounter", "EpisodeOfCare",
        "FamilyMemberHistory", "Immunization", "MedicationAdministration", "MedicationDispense",
        "MedicationRequest", "MedicationStatement", "Observation", "Procedure", "ServiceRequest",
        "Specimen",
    }
)
OBSERVATION_RESULT_STATUSES = frozenset({"final", "amended", "corrected"})
NEGATED_STATUSES = frozenset({"entered-in-error", "cancelled", "not-done", "not-taken", "revoked"})
DROPPED_VERIFICATION = frozenset({"refuted", "entered-in-error"})


class PatientRecord:
    """Filtered, indexed view of one patient's resources (see module docstring). Build with ``build``."""

    def __init__(
        self,
        patient_id: str,
        entries: list[Entry],
        issues: list[RecordIssue],
        retrieval: Mapping[str, RetrievalOutcome],
        orders_being_signed: tuple[dict, ...] = (),
    ):
        self.patient_id = patient_id
        self.orders_being_signed = orders_being_signed
        self._patient_reference = f"Patient/{patient_id}"
        self.issues: list[RecordIssue] = issues
        self._retrieval = dict(retrieval)
        self._by_type: dict[str, list[dict]] = {}
        self._by_key: dict[tuple[str, str], dict] = {}
        self._by_full_url: dict[str, dict] = {}
        self._full_url_of: dict[int, str] = {}
        self._well_formed: dict[int, bool] = {}
        self._memo: dict[Any, Any] = {}
        patient_urls = self._patient_full_urls(entries)
        for entry in entries:
            self._admit(entry, patient_urls)

    # ---------------------------------------------------------------------------------- building

    @classmethod
    def build(
        cls,
        patient_id: str,
        sources: Iterable[Any],
        retrieval: Mapping[str, RetrievalOutcome] | None = None,
        orders_being_signed: Iterable[dict] = (),
    ) -> PatientRecord:
        """``sources``: raw FHIR JSON resources and/or Bundles; ``retrieval``: outcome per resource type
        (types not named count as complete); ``orders_being_signed``: the hook's draft orders."""
        if not isinstance(patient_id, str) or not patient_id.strip():
            raise ValueError("patient_id is required")
        patient_id = patient_id.strip().removeprefix("Patient/")
        entries, issues = flatten(sources)
        signing = tuple(o for o in orders_being_signed if isinstance(o, dict))
        return cls(patient_id, entries, issues, retrieval or {}, signing)

    def _patient_full_urls(self, entries: list[Entry]) -> frozenset[str]:
        """fullUrls (urn:uuid or absolute) under which the hook's Patient was sent, so that
        ``subject: {"reference": "urn:uuid:..."}`` in a transaction Bundle counts as this patient."""
        return frozenset(
            e.full_url
            for e in entries
            if e.full_url and e.resource.get("resourceType") == "Patient" and e.resource.get("id") == self.patient_id
        )

    def _admit(self, entry: Entry, patient_urls: frozenset[str]) -> None:
        resource = entry.resource
        kind = resource["resourceType"]
        if not isinstance(resource.get("id", ""), str) or not isinstance(resource.get("status", ""), str):
            self.issues.append(RecordIssue(entry.full_url, "malformed", f"{kind}.id or .status is not a string"))
            return
        try:
            reason = self._exclusion(resource, patient_urls)
        except (TypeError, AttributeError, ValueError):  # an element of the wrong JSON type
            reason = ("malformed", f"{kind} has an element of the wrong type")
        if reason is not None:
            ref = resource_reference(resource) or entry.full_url
            self.issues.append(RecordIssue(ref, reason[0], reason[1]))
            return
        key = (kind, resource["id"]) if resource.get("id") else None
        if key is not None and key in self._by_key:
            previous = self._by_key[key]
            if not _newer(resource, previous):
                return
            self._by_type[kind].remove(previous)  # a later version of the same resource replaces it
        self._by_type.setdefault(kind, []).append(resource)
        if key is not None:
            self._by_key[key] = resource
        if entry.full_url:
            self._by_full_url[entry.full_url] = resource
            self._full_url_of[id(resource)] = entry.full_url

    def _exclusion(self, resource: dict, patient_urls: frozenset[str]) -> tuple[str, str] | None:
        """(issue code, detail) when the resource must not be used, else None."""
        kind = resource["resourceType"]
        if kind == "Patient":
            if resource.get("id") != self.patient_id:
                return "other-patient", "a Patient other than the hook's patient"
            return None
        status = resource.get("status")
        if status in NEGATED_STATUSES:
            return status, f"{kind}.status is {status}"
        if kind == "Observation" and status not in OBSERVATION_RESULT_STATUSES:
            return "not-final", f"Observation.status is {status if isinstance(status, str) else 'missing'}"
        if "verificationStatus" in resource:
            dropped = _codes(resource["verificationStatus"]) & DROPPED_VERIFICATION
            if dropped:
                code = sorted(dropped)[0]
                return code, f"{kind}.verificationStatus is {code}"
        for link_field in PATIENT_LINK_FIELDS:
            if link_field in resource:
                break
        else:
            if kind in PATIENT_COMPARTMENT:
                return "no-patient", f"{kind} names no subject/patient"
            return None
        link = reference_string(resource[link_field])
        if link == self._patient_reference:
            return None  # the usual form, without a regex
        if link is not None and (link in patient_urls or parse_reference(link) == ("Patient", self.patient_id)):
            return None
        if link is None:
            return None if kind not in PATIENT_COMPARTMENT else ("no-patient", f"{kind}.{link_field} has no reference")
        return "other-patient", f"{kind}.{link_field} is not the hook's patient"

    # ---------------------------------------------------------------------------------- queries

    def of_type(self, resource_type: str) -> tuple[dict, ...]:
        """Usable resources of one type, raw JSON, in the order received."""
        return tuple(self._by_type.get(resource_type, ()))

    def retrieval(self, resource_type: str) -> RetrievalOutcome:
        return self._retrieval.get(resource_type, COMPLETE)

    def reference_of(self, resource: dict) -> str:
        """``Type/id`` of a resource as the EHR sent it; its fullUrl when it has no id."""
        return (
            resource_reference(resource)
            or self._full_url_of.get(id(resource))
            or f"{resource.get('resourceType', 'Resource')}/(no id)"
        )

    def resolve(self, reference: Any, context: dict | None = None) -> dict | None:
        """The resource a Reference (or reference string) points to: ``#id`` inside ``context``'s
        ``contained``, a Bundle ``fullUrl`` (urn:uuid or absolute), or ``Type/id`` relative or
        absolute (any server base, ``_history`` ignored). None when not in the record."""
        ref = reference_string(reference)
        if ref is None:
            return None
        if ref.startswith("#"):
            return contained(context, ref)
        if ref in self._by_full_url:
            return self._by_full_url[ref]
        key = parse_reference(ref)
        return self._by_key.get(key) if key else None

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, computed once per record for ``key``: fact modules keep derived values here
        (a medication's identity, the exposure list) that the policy engine asks for many times per
        hook. It lives and dies with this record, so nothing is shared between hooks or patients."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def well_formed(self, resource: dict) -> bool:
        """Whether the elements facts read of ``resource`` validate (``parsing.validate``), checked once
        per resource; a malformed one is reported once as a ``malformed`` issue. Fact modules ask this
        for the few resources they actually use."""
        key = id(resource)
        if key not in self._well_formed:
            try:
                validate(resource)
                self._well_formed[key] = True
            except MalformedResource as error:
                self._well_formed[key] = False
                self.issues.append(RecordIssue(self.reference_of(resource), "malformed", str(error)))
        return self._well_formed[key]


def _codes(concept: Any) -> set[str]:
    return {code for c in codings_of(concept) if (code := c.get("code"))}


def _newer(candidate: dict, current: dict) -> bool:
    """Whether ``candidate`` is a later version than ``current`` (by meta.lastUpdated when both say)."""
    a = (candidate.get("meta") or {}).get("lastUpdated") if isinstance(candidate.get("meta"), dict) else None
    b = (current.get("meta") or {}).get("lastUpdated") if isinstance(current.get("meta"), dict) else None
    return isinstance(a, str) and isinstance(b, str) and a > b
