"""Which of the patient's Coverages this CRD endpoint assesses, and whose payer it is (CRD hook-13, resp-4,
resp-43).

A CRD endpoint answers for the payers it serves (``CART_CDS_PAYER_IDENTIFIERS``, ``system|value``). A
Coverage's payer is identified by ``Coverage.payor.identifier`` or, when the payor is a reference, by the
identifiers of the Organization it points to (from the record, else read from ``fhirServer``). The rule:

- the Coverage query failed (or the payer Organization could not be read): nothing can be said about the
  member's coverage; ``CoverageUnavailable`` (the decision becomes ``indeterminate``, reason technical,
  resp-43), never "no coverage";
- no active Coverage accessible, no payer identifier on any of them, only other payers' Coverages, or
  several Coverages of served payers that ``Coverage.order`` does not rank: a ``CoverageError``, HTTP 400
  with an OperationOutcome naming the reason (hook-13);
- several active Coverages and exactly one (or one ranked first by ``order``) for a served payer: that
  one, even when another payer's Coverage (Medicare, say) has a lower ``order``: the endpoint speaks
  only for its own payer.

With no payer configured (development only: ``settings.start_check`` refuses a production start) every
payer is served and a payer identifier is not required; the Coverage is still the one ``order`` ranks
first, and 400 when it cannot be told.

The payer's name for the card source (resp-4) is the payer Organization's ``name`` when the record holds
it; otherwise the caller falls back to the configured name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cds_service.errors import CoverageError
from cds_service.retrieval.fhir_client import FhirRequestError
from fhir_mappings import PatientRecord

PayerIdentifier = tuple[str, str]  # (system, value)
# reads "Organization/{id}" from fhirServer (None when there is no server to ask); raises FhirRequestError
ReadOrganization = Callable[[str], "dict | None"]


@dataclass(frozen=True)
class AssessedCoverage:
    """The Coverage the decision is made for: ``Coverage/{id}``, the resource, the payer's name (if known)."""

    reference: str
    resource: dict
    payer_name: str | None


@dataclass(frozen=True)
class CoverageUnavailable:
    """The Coverage (or its payer) could not be retrieved: a technical failure, with the reason."""

    reason: str


def primary_coverage(
    record: PatientRecord, served: Iterable[PayerIdentifier], read_organization: ReadOrganization | None = None
) -> AssessedCoverage | CoverageUnavailable:
    """The Coverage to assess (see the module doc); raises ``CoverageError`` (400) per hook-13."""
    served = frozenset((_system(s), v) for s, v in served)
    read: dict[str, dict] = {}  # payer Organizations read from fhirServer, by reference
    outcome = record.retrieval("Coverage")
    if not outcome.usable_in_full:
        return CoverageUnavailable(f"the patient's Coverage could not be retrieved ({outcome.reason or outcome.state.value})")
    active = [c for c in record.of_type("Coverage") if c.get("status") == "active" and record.well_formed(c)]
    if not active:
        raise CoverageError("no active Coverage for the patient is accessible (prefetch coverage or Coverage query)")
    if served:
        try:
            payers = {id(c): _payer_identifiers(record, c, read_organization, read) for c in active}
        except FhirRequestError as exc:
            return CoverageUnavailable(f"the payer Organization of the Coverage could not be read ({exc.reason})")
        if not any(payers.values()):
            raise CoverageError("the Coverage names no payer identifier (Coverage.payor.identifier or the "
                                "identifier of the payer Organization)")
        active = [c for c in active if payers[id(c)] & served]
        if not active:
            raise CoverageError("the Coverage's payer is not a payer this CRD endpoint serves")
    chosen = _ranked_first(active)
    if chosen is None:
        raise CoverageError("several active Coverages are accessible and Coverage.order does not tell which one "
                            "this payer is to assess")
    return AssessedCoverage(record.reference_of(chosen), chosen, _payer_name(record, chosen, read))


def _ranked_first(coverages: list[dict]) -> dict | None:
    """The only Coverage, or the one with the strictly lowest ``order``; None when that cannot be told."""
    if len(coverages) == 1:
        return coverages[0]
    ranked = sorted((o, i) for i, c in enumerate(coverages) if (o := _order(c)) is not None)
    if not ranked or (len(ranked) > 1 and ranked[0][0] == ranked[1][0]):
        return None
    return coverages[ranked[0][1]]


def _order(coverage: dict) -> int | None:
    order = coverage.get("order")
    return order if isinstance(order, int) and not isinstance(order, bool) else None


def _payer_identifiers(
    record: PatientRecord, coverage: dict, read_organization: ReadOrganization | None, read: dict[str, dict]
) -> set:
    """Every (system, value) naming the Coverage's payer: the payor's own identifier, then the identifiers
    of the Organization it references (read from the server only when the payor carries none and the
    record does not hold the Organization)."""
    found = set()
    for payor in coverage.get("payor") or ():
        if not isinstance(payor, dict):
            continue
        found |= _identifiers([payor.get("identifier")])
        if found:
            continue
        organization = record.resolve(payor)
        reference = payor.get("reference")
        if organization is None and read_organization is not None and isinstance(reference, str) \
                and reference.startswith("Organization/"):
            organization = read.setdefault(reference, read_organization(reference) or {})
        if isinstance(organization, dict):
            found |= _identifiers(organization.get("identifier") or ())
    return found


def _identifiers(identifiers: Iterable[object]) -> set:
    return {(_system(i["system"]), i["value"].strip()) for i in identifiers
            if isinstance(i, dict) and isinstance(i.get("system"), str) and isinstance(i.get("value"), str)
            and i["value"].strip()}


def _system(system: str) -> str:
    return system.strip().rstrip("/")


def _payer_name(record: PatientRecord, coverage: dict, read: dict[str, dict]) -> str | None:
    for payor in coverage.get("payor") or ():
        if not isinstance(payor, dict):
            continue
        reference = payor.get("reference")
        organization = record.resolve(payor) or (read.get(reference) if isinstance(reference, str) else None)
        name = organization.get("name") if isinstance(organization, dict) else None
        if isinstance(name, str) and name.strip():
            return name.strip()
    return None
