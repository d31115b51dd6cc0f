"""The condition value sets: well-formed, sourced, confidence-marked, matching as EHRs send codes."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_mappings.facts import Coded
from fhir_mappings.terminology import all_value_sets, value_set, value_sets_containing, value_sets_named_in
from tests.hypothesis_budget import examples

CONDITION_SETS = (
    "multiple-myeloma", "myeloma-relapsed", "myeloma-in-remission", "myeloma-not-in-remission",
    "cns-malignancy-involvement", "meningeal-involvement", "epilepsy", "seizure", "paresis", "aphasia", "stroke",
    "severe-brain-injury", "dementia", "parkinsons-disease", "cerebellar-disease", "organic-brain-syndrome",
    "psychosis", "cerebrovascular-ischemia", "disease-status", "disease-status-progression", "line-of-business",
)
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"


def raw(vs_id):
    return json.loads((resources.files("fhir_mappings") / "value_sets" / f"{vs_id}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("vs_id", CONDITION_SETS)
def test_every_code_has_system_display_source_and_confidence(vs_id):
    data = raw(vs_id)
    assert data["id"] == vs_id and vs_id in all_value_sets()
    for entry in data.get("codes", []) + data.get("prefixes", []):
        assert entry["system"].startswith(("http", "urn")) and entry.get("display") and entry.get("source")
        assert entry["confidence"] in ("C", "P")


@pytest.mark.parametrize(
    "vs_id, system, code, expected",
    [
        ("multiple-myeloma", ICD, "C90.02", True),
        ("multiple-myeloma", ICD, "C9000", True),
        ("multiple-myeloma", "urn:oid:2.16.840.1.113883.6.90", "C90.01", True),
        ("multiple-myeloma", ICD, "C90.30", False),
        ("multiple-myeloma", SCT, "109989006", True),
        ("epilepsy", ICD, "G40.A09", True),
        ("seizure", ICD, "R56.00", False),
        ("paresis", ICD, "I69.351", True),
        ("paresis", ICD, "I69.320", False),
        ("aphasia", ICD, "I69.320", True),
        ("severe-brain-injury", ICD, "S06.0X0A", False),
        ("severe-brain-injury", ICD, "S06.5X0A", True),
        ("parkinsons-disease", ICD, "G21.11", False),
        ("psychosis", ICD, "F10.259", True),
        ("cerebrovascular-ischemia", ICD, "G45.4", False),
        ("cerebrovascular-ischemia", ICD, "G45.9", True),
        ("stroke", "http://hl7.org/fhir/sid/icd-10", "I63.9", False),  # WHO ICD-10 is another system
    ],
)
def test_membership(vs_id, system, code, expected):
    assert value_set(vs_id).contains(system, code) is expected


def test_value_sets_containing_agrees_with_asking_each_value_set():
    value_sets = all_value_sets().values()
    probes = [Coded(system, code) for vs in value_sets for system, code in sorted(vs.codes)]
    probes += [Coded(system, prefix + "9") for vs in value_sets for system, prefix in sorted(vs.prefixes)]
    probes += [Coded("urn:oid:2.16.840.1.113883.6.1", "33358-3"), Coded("http://hl7.org/fhir/sid/icd-10-cm", "C90.02"),
               Coded(" http://snomed.info/sct ", " 109989006 "), Coded(None, "33358-3"), Coded("http://loinc.org", ""),
               Coded("urn:oid:2.16.840.1.113883.6.90", " g40.909 "), Coded("http://loinc.org", "G40")]
    for probe in probes:
        expected = {vs.id for vs in value_sets if vs.contains(probe.system, probe.code)}
        assert value_sets_containing([probe]) == expected, probe
    assert value_sets_containing(probes[:2]) == value_sets_containing(probes[:1]) | value_sets_containing(probes[1:2])


TERMS = sorted({term for vs in all_value_sets().values() for term in vs.text_terms})


def _named_by_match_text(text: str) -> set[str]:
    return {vs.id for vs in all_value_sets().values() if vs.match_text(text) is not None}


@pytest.mark.parametrize("text", [
    "bortezomib (VELCADE) 3.5 mg injection", "DARZALEX FASPRO", "Ondansetron 8 mg tablet", "", "abecm",
    "s/p Abecma infusion; previously daratumumab-hyaluronidase", TERMS[0][:-1], TERMS[-1] + TERMS[0],
])
def test_value_sets_named_in_agrees_with_match_text(text):
    assert value_sets_named_in(text.lower()) == _named_by_match_text(text)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.one_of(st.sampled_from(TERMS), st.sampled_from(TERMS).map(lambda t: t[1:-1]),
                          st.text(alphabet="abcdelmoz -()", max_size=6)), max_size=5))
def test_value_sets_named_in_agrees_with_match_text_on_generated_names(parts):
    text = "".join(parts).upper() if len(parts) % 2 else " ".join(parts)  # terms whole, cut, glued, any case
    assert value_sets_named_in(text.lower()) == _named_by_match_text(text)
