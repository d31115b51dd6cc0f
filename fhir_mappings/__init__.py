"""FHIR R4 record -> the facts policy criteria need (no HTTP, no policy logic).

The names below are the package's public surface: what the service layer may use, listed with their
contracts in docs/architecture.md (tests/test_architecture.py keeps the two in step). Policies also read
the fact value types from ``fhir_mappings.facts`` directly.
"""

from fhir_mappings.clinical_facts import ClinicalFacts
from fhir_mappings.coverage import (
    LineOfBusinessTable,
    default_line_of_business_table,
    load_line_of_business_table,
)
from fhir_mappings.data_requirements import (
    DataRequirement,
    MissingContextValue,
    data_requirements,
    prefetch_templates,
)
from fhir_mappings.facts import (
    COMPLETE,
    Coded,
    Evidence,
    Fact,
    FactSource,
    Observed,
    RetrievalOutcome,
    RetrievalState,
    Unknown,
)
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.references import (
    is_local,
    relative_reference,
    resolver,
    resource_reference,
)

__all__ = [
    "COMPLETE",
    "ClinicalFacts",
    "Coded",
    "DataRequirement",
    "Evidence",
    "Fact",
    "FactSource",
    "LineOfBusinessTable",
    "MissingContextValue",
    "Observed",
    "PatientRecord",
    "RetrievalOutcome",
    "RetrievalState",
    "Unknown",
    "data_requirements",
    "default_line_of_business_table",
    "is_local",
    "load_line_of_business_table",
    "prefetch_templates",
    "relative_reference",
    "resolver",
    "resource_reference",
]
