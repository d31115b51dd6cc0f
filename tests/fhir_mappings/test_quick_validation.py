"""quick_validation may only make validation faster, never more permissive: whatever it accepts, the
fhir.resources R4B model accepts too. Checked on every resource type it knows, from the sandbox records
(Epic/Cerner-shaped), with hypothesis replacing elements by tricky FHIR values (dates that do not exist,
codes with double spaces, timezone-less times, nulls, empty strings and objects ...)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_mappings.parsing import MalformedResource, read_elements, validate
from fhir_mappings.quick_validation import well_formed
from tests.hypothesis_budget import examples
from tests.json_positions import json_positions

SANDBOX = Path(__file__).parents[2] / "sandbox"
TYPES = ("Patient", "Observation", "Condition", "Coverage", "MedicationStatement", "MedicationAdministration",
         "MedicationRequest", "Procedure")


def _sandbox_resources() -> list[dict]:
    """One resource per type and set of elements: the sandbox patients' records and the draft orders
    of the sandbox hooks (dosage, dispense request)."""
    bundles = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((SANDBOX / "patients").glob("*.json"))]
    for path in sorted((SANDBOX / "hooks").glob("*.json")):
        bundles.append(json.loads(path.read_text(encoding="utf-8"))["context"]["draftOrders"])
    found = {}
    for bundle in bundles:
        for entry in bundle.get("entry", ()):
            resource = read_elements(entry["resource"])
            if resource["resourceType"] in TYPES:
                found.setdefault((resource["resourceType"], tuple(sorted(resource))), resource)
    return list(found.values())


RESOURCES = _sandbox_resources()

STRINGS = [
    "", " ", "a", "a b", "a  b", " a", "a ", "a\nb", "a\tb", "Patient/p1", "http://loinc.org", "http://x y",
    "urn:oid:2.16.840.1.113883.6.1", "2026", "2026-02", "2026-13", "0000", "2026-02-28", "2026-02-29", "2024-02-29",
    "2026-02-30", "2026-04-31", "2026-11-24T10:00:00Z", "2026-11-24T10:00:00", "2026-11-24T10:00Z",
    "2026-11-24T24:00:00Z", "2026-11-24T10:00:60Z", "2026-11-24T10:00:00.5-05:00", "2026-11-24T10:00:00+14:00",
    "2026-11-24T10:00:00+14:30", "2026-11-24T10:00:00+1400", "2026-11-24 10:00:00Z", "completed", "x" * 65,
]
NUMBERS = [-2, -1, 0, 1, 2, 0.5, 1.0, -1.5, 1e308]
tricky_strings = st.sampled_from(STRINGS)
tricky_numbers = st.sampled_from(NUMBERS)
tricky_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.sampled_from([1.5, -0.0, 1e308]) | tricky_strings,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
        st.sampled_from(["reference", "display", "system", "code", "text", "coding", "value", "unit", "start",
                         "end", "type", "use", "userSelected", "version", "comparator", "extension", "count", "period",
                         "periodUnit", "sequence", "low", "high", "boundsPeriod", "doseQuantity"]),
        inner, max_size=3),
    max_leaves=5,
)


# Well-formed elements a resource may gain (a second choice of an [x] element is the interesting case).
extra_elements = st.sampled_from([
    ("effectivePeriod", {"start": "2026-01-01"}), ("effectiveInstant", "2026-11-24T10:00:00Z"),
    ("effectiveDateTime", "2026-11-24"), ("medicationReference", {"reference": "Medication/m1"}),
    ("medicationCodeableConcept", {"text": "lenalidomide"}), ("valueString", "positive"),
    ("valueQuantity", {"value": 1}), ("onsetPeriod", {"start": "2020-01-01"}), ("onsetDateTime", "2020"),
    ("performedPeriod", {"start": "2026-01-01"}), ("performedDateTime", "2026-01-01"), ("status", "active"),
])


def _model_accepts(resource: dict) -> bool:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except Exception:  # noqa: BLE001 -- any refusal of the model counts as "not accepted"
        return False
    return True


def test_the_sandbox_records_cover_every_type_and_mostly_take_the_fast_path():
    assert {r["resourceType"] for r in RESOURCES} == set(TYPES)
    quick = [r for r in RESOURCES if well_formed(r)]
    assert len(quick) >= len(RESOURCES) // 2
    assert all(_model_accepts(r) for r in quick)


@st.composite
def mutated(draw):
    resource = copy.deepcopy(draw(st.sampled_from(RESOURCES)))
    for _ in range(draw(st.integers(1, 2))):
        positions = [p for p in json_positions(resource) if p[0] not in ("resourceType",)]
        if not positions:
            break
        path = draw(st.sampled_from(positions))
        target = resource
        for key in path[:-1]:
            target = target[key]
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "any"]))
        if action == "delete" and isinstance(target, dict):
            del target[path[-1]]
        elif action == "replace" and isinstance(target[path[-1]], (str, int, float)):
            current = target[path[-1]]  # same JSON type: the value's format or range is what is tested
            target[path[-1]] = draw(tricky_strings if isinstance(current, str) else tricky_numbers)
        else:
            target[path[-1]] = draw(tricky_values)
    if draw(st.booleans()):
        key, value = draw(extra_elements)
        resource[key] = copy.deepcopy(value)
    return resource


@settings(max_examples=examples(1500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_whatever_the_fast_path_accepts_the_r4b_model_accepts(resource):
    if well_formed(resource):
        assert _model_accepts(resource), resource


def test_every_leaf_of_every_record_with_every_tricky_value():
    """Exhaustive over single changes: each string or number in each resource replaced by each tricky
    value of its JSON type (hypothesis above explores combinations and other types)."""
    checked = 0
    for base in RESOURCES:
        for path in json_positions(base):
            target = base
            for key in path[:-1]:
                target = target[key]
            current = target[path[-1]]
            if isinstance(current, bool) or not isinstance(current, (str, int, float)):
                continue
            for value in STRINGS if isinstance(current, str) else NUMBERS:
                changed = copy.deepcopy(base)
                holder = changed
                for key in path[:-1]:
                    holder = holder[key]
                holder[path[-1]] = value
                if well_formed(changed):
                    checked += 1
                    assert _model_accepts(changed), (path, value)
    assert checked > 1000


@pytest.mark.parametrize("change, element", [
    ({"effectiveDateTime": "2026-02-30T10:00:00Z"}, "effectiveDateTime"),
    ({"effectiveDateTime": "2026-11-24T10:00:00"}, "effectiveDateTime"),
    ({"status": "completed "}, "status"),
    ({"subject": {"reference": ""}}, "subject.reference"),
])
def test_what_the_fast_path_refuses_is_judged_by_the_model_and_named(change, element):
    administration = next(r for r in RESOURCES if r["resourceType"] == "MedicationAdministration")
    broken = {**copy.deepcopy(administration), **change}
    assert not well_formed(broken)
    with pytest.raises(MalformedResource) as error:
        validate(broken)
    assert element in error.value.paths


@pytest.mark.parametrize("kind, present, extra", [
    ("MedicationAdministration", "medicationCodeableConcept", {"medicationReference": {"reference": "Medication/m1"}}),
    ("MedicationAdministration", "effectiveDateTime", {"effectivePeriod": {"start": "2026-01-02"}}),
    ("Observation", "valueQuantity", {"valueString": "positive"}),
])
def test_two_properties_of_one_choice_element_are_left_to_the_model(kind, present, extra):
    resource = next(r for r in RESOURCES if r["resourceType"] == kind and present in r and well_formed(r))
    doubled = {**resource, **extra}
    assert not well_formed(doubled)
    assert not _model_accepts(read_elements(doubled))


def test_read_elements_keeps_what_facts_read_and_copies_only_when_something_is_left_out():
    administration = {
        "resourceType": "MedicationAdministration", "id": "ma1", "status": "completed", "_status": {"id": "s"},
        "effectiveDateTime": "2026-01-02", "_effectiveDateTime": {"id": "e"}, "effectivedatetime": "x",
        "effective": "x", "__status": {}, "meta": {"versionId": "1"}, "note": [{"text": "n"}],
        "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": "bortezomib"},
    }
    read = read_elements(administration)
    assert set(read) == {"resourceType", "id", "status", "_status", "effectiveDateTime", "_effectiveDateTime",
                         "subject", "medicationCodeableConcept"}
    assert read_elements(read) is read
