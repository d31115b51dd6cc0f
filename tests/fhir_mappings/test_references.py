"""FHIR references in the forms EHRs send them: relative, absolute, versioned, urn:uuid, #contained."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fhir_mappings.references import (
    FHIR_ID,
    contained,
    is_fhir_id,
    is_local,
    parse_reference,
    reference_string,
    relative_reference,
    resolver,
    resource_reference,
)

EPIC = "https://fhir.epic.example.org/api/FHIR/R4"
MEDICATION = {"resourceType": "Medication", "id": "eHpE3.Kl-9", "code": {"text": "ciltacabtagene autoleucel"}}


@pytest.mark.parametrize(
    "reference, parsed",
    [
        ("Medication/eHpE3.Kl-9", ("Medication", "eHpE3.Kl-9")),
        (f"{EPIC}/Medication/eHpE3.Kl-9", ("Medication", "eHpE3.Kl-9")),
        ("Patient/p1/_history/3", ("Patient", "p1")),
        (f"{EPIC}/PractitionerRole/pr-7/_history/2", ("PractitionerRole", "pr-7")),
        ("urn:uuid:9d4e1c2a-0c4b-4f7e-9b1a-2f6d3c8e5a10", None),
        ("#med1", None),
        ("Medication/has space", None),
        ("medication/1", None),  # a resource type is PascalCase
        ("Medication/" + "x" * 65, None),  # an id is at most 64 characters
        ("Medication", None),
        (None, None),
    ],
)
def test_parse_reference(reference, parsed):
    assert parse_reference(reference) == parsed


def test_relative_reference_accepts_only_the_relative_form_of_the_types_asked():
    assert relative_reference("Practitioner/123") == "Practitioner/123"
    assert relative_reference("Practitioner/123/_history/4", ("Practitioner",)) == "Practitioner/123"
    assert relative_reference("Practitioner/123", ("Medication",)) is None
    assert relative_reference(f"{EPIC}/Practitioner/123") is None
    assert relative_reference("#p1") is None and relative_reference(12) is None


def test_reference_string_reads_a_reference_or_a_string_and_trims():
    assert reference_string({"reference": " Patient/p1 ", "display": "Ana"}) == "Patient/p1"
    assert reference_string("Patient/p1") == "Patient/p1"
    assert reference_string({"display": "Dr. Who"}) is None and reference_string({"reference": "  "}) is None


def test_local_references_are_contained_or_bundle_entries():
    assert is_local("#med1") and is_local("urn:uuid:9d4e1c2a-0c4b-4f7e-9b1a-2f6d3c8e5a10")
    assert not is_local("Medication/1") and not is_local(f"{EPIC}/Medication/1")


def test_contained_finds_the_resource_by_its_local_id():
    order = {"resourceType": "MedicationRequest", "contained": [{"resourceType": "Medication", "id": "med1"}]}
    assert contained(order, "#med1") == {"resourceType": "Medication", "id": "med1"}
    assert contained(order, "#med2") is None
    assert contained(order, "Medication/med1") is None
    assert contained({"contained": "not a list of resources"}, "#med1") is None


def test_resource_reference():
    assert resource_reference(MEDICATION) == "Medication/eHpE3.Kl-9"
    assert resource_reference({"resourceType": "Medication"}) is None
    assert resource_reference({"resourceType": "Medication", "id": ""}) is None
    assert resource_reference("Medication/1") is None


def test_resolver_finds_by_type_and_id_whatever_the_base_or_version():
    resolve = resolver([MEDICATION, {"resourceType": "Practitioner"}, "not a resource"])
    assert resolve("Medication/eHpE3.Kl-9") is MEDICATION
    assert resolve(f"{EPIC}/Medication/eHpE3.Kl-9/_history/1") is MEDICATION
    assert resolve({"reference": "Medication/eHpE3.Kl-9"}) is MEDICATION
    assert resolve("Medication/other") is None and resolve("#eHpE3.Kl-9") is None


def test_is_fhir_id():
    assert is_fhir_id("A-z.0") and is_fhir_id("x" * 64)
    assert not is_fhir_id("") and not is_fhir_id("x" * 65) and not is_fhir_id("a_b") and not is_fhir_id(7)


def test_the_service_schemas_write_the_fhir_id_as_this_module_does():
    """The JSON schemas cannot import the pattern; every id pattern in them (1 to 64 characters) is the
    same regex."""
    schemas = Path(__file__).parents[2] / "cds_service" / "schemas"
    patterns = [
        json.loads(f'"{raw}"')
        for path in sorted(schemas.glob("*.json"))
        for raw in re.findall(r'"pattern":\s*"((?:[^"\\]|\\.)*)"', path.read_text(encoding="utf-8"))
    ]
    # the draft order's id is deliberately looser (any non-space characters: see the schema's $comment)
    id_patterns = [p for p in patterns if "{1,64}" in p and p != "^\\S{1,64}$"]
    assert len(patterns) > len(id_patterns) > 0
    assert all(FHIR_ID in pattern for pattern in id_patterns)
