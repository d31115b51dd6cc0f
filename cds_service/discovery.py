"""The discovery document (``GET /cds-services``), declared once and built once.

One ``order-sign`` service serves every policy (CRD found-15), with an ``order-dispatch`` twin for the
dispatched orders (``order_dispatch``). Its ``prefetch`` templates come from
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
        "appropriate-use", "boolean", "Policy document cards",
        "Return an External Reference card per in-scope order linking the payer's policy document, which lists "
        "the criteria and the documentation required. Sent only where the payer has published the document's URL.",
        True),
    ConfigurationOption(
        "limits", "boolean", "Approval limits cards",
        "Return an Instructions card per order that may be covered, stating the approval limits (duration, "
        "doses, review) as text. Off by default: the coverage information already carries these limits.",
        False),
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


DISPATCH_HOOK = "order-dispatch"
DISPATCH_SERVICE_ID = "car-t-coverage-dispatch"
DISPATCH_TITLE = "CAR-T cell therapy coverage requirements at dispatch"
DISPATCH_DESCRIPTION = (
    "When a CAR-T cell therapy order is dispatched to a treatment center, gives the same policy check and "
    "Da Vinci CRD coverage information as at signing, for the dispatched orders."
)


@cache
def discovery_document() -> dict:
    """The ``GET /cds-services`` body. Cached: the declaration does not change while the process runs.
    Both services (CRD primary hooks order-sign and order-dispatch, hook-4/resp-26) share the prefetch
    templates, versions and configuration options: one data-requirements declaration, one decision."""
    return {"services": [
        _service(HOOK, SERVICE_ID, TITLE, DESCRIPTION),
        _service(DISPATCH_HOOK, DISPATCH_SERVICE_ID, DISPATCH_TITLE, DISPATCH_DESCRIPTION),
    ]}


def _service(hook: str, service_id: str, title: str, description: str) -> dict:
    return {
        "hook": hook,
        "id": service_id,
        "title": title,
        "description": description,
        "usageRequirements": USAGE_REQUIREMENTS,
        "prefetch": prefetch_templates(),
        "extension": {
            "davinci-crd.version": list(CRD_VERSIONS),
            "davinci-crd.configuration-options": [option.as_json() for option in CONFIGURATION_OPTIONS],
        },
    }
