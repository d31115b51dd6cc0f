"""The discovery document (``GET /cds-services``), declared once and built once.

One ``order-sign`` service serves every policy (CRD found-15). Its ``prefetch`` templates come from
``fhir_mappings.data_requirements`` -- the same declaration the record retrieval uses for its fallback
queries -- so what is advertised and what is fetched cannot drift apart. The CRD configuration options
declared here are also what ``hook_request`` parses the client's ``davinci-crd.configuration`` against.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from fhir_mappings import prefetch_templates

SERVICE_ID = "car-t-coverage"
HOOK = "order-sign"
CRD_VERSIONS = ("2.2",)  # major.minor only (CRD dev-1)


@dataclass(frozen=True)
class ConfigurationOption:
    """A CRD configuration option (CRD dev-4): ``type`` is the JSON type of its value."""

    code: str
    type: str  # "boolean" | "integer"
    name: str
    description: str
    default: bool | int

    def accepts(self, value: object) -> bool:
        if self.type == "boolean":
            return isinstance(value, bool)
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    @property
    def expected(self) -> str:
        return "true or false" if self.type == "boolean" else "a whole number of at least 0"

    def as_json(self) -> dict:
        return {"code": self.code, "type": self.type, "name": self.name, "description": self.description,
                "default": self.default}


CONFIGURATION_OPTIONS = (
    ConfigurationOption(
        "coverage-info", "boolean", "Coverage information",
        "Add the payer's coverage assertion (covered, prior authorization, documentation needed) to each "
        "in-scope order as a coverage-information system action. Set to false to receive cards only.",
        True),
    ConfigurationOption(
        "guideline", "boolean", "Policy criteria cards",
        "Return a card per in-scope order explaining, criterion by criterion, how it compares with the payer's "
        "medical-necessity policy and what documentation is missing. Set to false for coverage actions only.",
        True),
    ConfigurationOption(
        "max-cards", "integer", "Maximum cards",
        "The largest number of cards returned for one call; the most important cards are kept.",
        10),
)

TITLE = "CAR-T cell therapy coverage requirements"
DESCRIPTION = (
    "When a CAR-T cell therapy order is signed, checks it against the payer's medical-necessity policy "
    "for that product and returns a card naming the criteria met, not met or not yet documented, with "
    "Da Vinci CRD coverage information for each in-scope order. Orders for other products get no guidance."
)
USAGE_REQUIREMENTS = (
    "Send fhirServer and fhirAuthorization with read access to the patient's record: data not supplied "
    "by prefetch is queried from the FHIR server."
)


@cache
def discovery_document() -> dict:
    """The ``GET /cds-services`` body. Cached: the declaration does not change while the process runs."""
    return {
        "services": [
            {
                "hook": HOOK,
                "id": SERVICE_ID,
                "title": TITLE,
                "description": DESCRIPTION,
                "usageRequirements": USAGE_REQUIREMENTS,
                "prefetch": prefetch_templates(),
                "extension": {
                    "davinci-crd.version": list(CRD_VERSIONS),
                    "davinci-crd.configuration-options": [option.as_json() for option in CONFIGURATION_OPTIONS],
                },
            }
        ]
    }
