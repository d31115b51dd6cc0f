"""What the clinical facts need from the EHR, declared once.

The service derives both its discovery ``prefetch`` templates and its fallback FHIR queries from
``DATA_REQUIREMENTS``, so what is advertised and what is later fetched cannot drift apart. Templates use
only CDS Hooks 2.0 tokens (``{{context.patientId}}``, ``{{context.userId}}``, ``{{userPractitionerId}}``);
values are substituted as query parameters by the caller, never pasted into a URL string.

The ordering clinician's roles (``userRoles``: ``PractitionerRole?practitioner={{userPractitionerId}}``)
carry the specialty the policies ask of the prescriber when the user is a Practitioner: asking for them
in prefetch spares every hook a search at the EHR. ``{{userPractitionerId}}`` is the bare id CDS Hooks 2.0
defines for this (``context.userId`` is ``Type/id``); when the user is not a Practitioner (a
PractitionerRole user is read whole by ``user``), the EHR cannot substitute it and sends nothing, and
``applies`` tells the fallback not to ask either.

Each requirement is keyed by the prefetch key and names the one resource type it returns, so a failed or
partial retrieval of that key maps to the facts built from that resource type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from fhir_mappings import labs, progression
from fhir_mappings.references import FHIR_ID, is_fhir_id, relative_reference
from fhir_mappings.terminology import value_set

LOINC = "http://loinc.org"

# The modules that select Observations by code, each declaring the value sets it reads in its
# ``OBSERVATION_VALUE_SETS``: the fallback query asks for exactly those, so a lab a module reads cannot be
# left out of the query (tests/fhir_mappings/test_data_requirements.py watches what the facts read).
LAB_MODULES = (labs, progression)

TOKEN = re.compile(r"\{\{\s*(?:context\.(patientId|userId|encounterId)|(userPractitionerId))\s*\}\}")
USER_TYPES = ("Practitioner", "PractitionerRole")  # what context.userId may name for a read
USER_PRACTITIONER = re.compile(rf"Practitioner/({FHIR_ID})")


class MissingContextValue(ValueError):
    """A template token whose context value is absent or empty; the query must not be run."""


@dataclass(frozen=True)
class DataRequirement:
    key: str  # prefetch key, e.g. "observations"
    resource_type: str  # the resource type the key returns (for a read of {{context.userId}}: "Practitioner")
    read_token: str | None = None  # instance read: the context field naming "Type/id" or the id
    search: tuple[tuple[str, str], ...] = ()  # search parameters; values may contain tokens

    @property
    def is_read(self) -> bool:
        return self.read_token is not None

    def prefetch_template(self) -> str:
        if self.read_token == "userId":
            return "{{context.userId}}"
        if self.read_token:
            return f"{self.resource_type}/{{{{context.{self.read_token}}}}}"
        query = "&".join(f"{name}={value}" for name, value in self.search)
        return f"{self.resource_type}?{query}"

    def applies(self, context: Mapping[str, str | None]) -> bool:
        """False when a template names ``{{userPractitionerId}}`` and the user is known not to be a
        Practitioner: nothing to ask (the EHR cannot substitute the token either)."""
        if not any("userPractitionerId" in value for _, value in self.search):
            return True
        user = context.get("userId")
        return not isinstance(user, str) or not user.strip() or USER_PRACTITIONER.fullmatch(user.strip()) is not None

    def query(self, context: Mapping[str, str | None]) -> tuple[str, dict[str, str]]:
        """(relative path, query parameters) for a fallback request, with context values substituted.
        The caller passes the parameters to its HTTP client for encoding."""
        if self.read_token:
            value = _context_value(context, self.read_token)
            if self.read_token == "userId":
                if relative_reference(value, USER_TYPES) != value:
                    raise MissingContextValue("context.userId is not a Practitioner or PractitionerRole reference")
                return value, {}
            if not is_fhir_id(value):
                raise MissingContextValue(f"context.{self.read_token} is not a FHIR id")
            return f"{self.resource_type}/{value}", {}
        params = {}
        for name, template in self.search:
            params[name] = TOKEN.sub(lambda m: _token_value(context, m), template)
        return self.resource_type, params


def _token_value(context: Mapping[str, str | None], token: re.Match) -> str:
    if token.group(1):
        return _context_value(context, token.group(1))
    user = USER_PRACTITIONER.fullmatch(_context_value(context, "userId"))
    if user is None:
        raise MissingContextValue("context.userId is not a Practitioner reference")
    return user.group(1)


def _context_value(context: Mapping[str, str | None], name: str) -> str:
    value = context.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MissingContextValue(f"context.{name} has no value")
    return value.strip()


def observation_value_sets() -> tuple[str, ...]:
    """The value sets of every Observation the facts read, in the lab modules' order, each once."""
    return tuple(dict.fromkeys(vs_id for module in LAB_MODULES for vs_id in module.OBSERVATION_VALUE_SETS))


@cache
def observation_codes() -> str:
    """The LOINC codes of every lab the facts read, as a FHIR token list ``system|code,...``."""
    codes: list[str] = []
    for vs_id in observation_value_sets():
        codes.extend(f"{LOINC}|{code}" for code in value_set(vs_id).codes_for(LOINC))
    return ",".join(codes)


PATIENT = "{{context.patientId}}"
# Page size asked of the searches that can return a patient's whole history. Servers page by default
# (HAPI: 20 a page), and every extra page is one more round trip after the previous one: a record of
# ~100 medication resources would take several sequential pages per type. FHIR lets a server return
# fewer than ``_count`` (never more), so the parameter is safe to send; 200 is HAPI's maximum page and
# keeps a page far below the response-size limit (about 0.5 MB for 200 medication resources).
PAGE = ("_count", "200")


# ServiceRequests are read for the orders still live (another CAR-T product ordered as a service, I.A.9).
# A patient's ServiceRequests are mostly lab and imaging orders, thousands over a history: asking for the
# live ones keeps the answer to one page, where the whole history could exceed the page cap and leave the
# concurrent-order criterion unknown for lack of data. MedicationDispenses are read in full: a completed
# dispense is evidence a product was received (prior-therapy criteria, see ``therapy``).
LIVE_ORDERS = ("status", "draft,active,on-hold")


@cache
def data_requirements() -> tuple[DataRequirement, ...]:
    """The declaration. Built lazily because the Observation codes come from the value-set files."""
    return (
        DataRequirement("patient", "Patient", read_token="patientId"),
        DataRequirement("coverage", "Coverage", search=(("patient", PATIENT), ("status", "active"))),
        DataRequirement("user", "Practitioner", read_token="userId"),
        DataRequirement("conditions", "Condition", search=(("patient", PATIENT), PAGE)),
        DataRequirement(
            "observations",
            "Observation",
            search=(("patient", PATIENT), ("code", observation_codes()), ("_sort", "-date"), PAGE),
        ),
        DataRequirement("medicationStatements", "MedicationStatement", search=(("patient", PATIENT), PAGE)),
        DataRequirement("medicationAdministrations", "MedicationAdministration", search=(("patient", PATIENT), PAGE)),
        DataRequirement("medicationRequests", "MedicationRequest", search=(("patient", PATIENT), PAGE)),
        DataRequirement("medicationDispenses", "MedicationDispense", search=(("patient", PATIENT), PAGE)),
        DataRequirement("procedures", "Procedure", search=(("patient", PATIENT), PAGE)),
        DataRequirement("serviceRequests", "ServiceRequest", search=(("patient", PATIENT), LIVE_ORDERS, PAGE)),
        DataRequirement("userRoles", "PractitionerRole", search=(("practitioner", "{{userPractitionerId}}"),)),
    )


def prefetch_templates() -> dict[str, str]:
    """Discovery ``prefetch``: key -> template, in declaration order."""
    return {req.key: req.prefetch_template() for req in data_requirements()}
