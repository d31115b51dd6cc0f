"""What a problem-list entry asserts: text and display-only codings as evidence, negation and hedges."""

from __future__ import annotations

import pytest
from fhir_samples import ICD10CM, SNOMED

from fhir_mappings.assertions import HISTORICAL, PRESENT, UNCERTAIN, match


def text(words):
    return {"text": words}


@pytest.mark.parametrize("value_set, words, expected", [
    ("cns-malignancy-involvement", "CNS involvement by myeloma", PRESENT),
    ("cns-malignancy-involvement", "Leptomeningeal myelomatosis (CSF cytology positive)", PRESENT),
    ("cns-malignancy-involvement", "History of CNS involvement, treated with IT chemotherapy", HISTORICAL),
    ("cns-malignancy-involvement", "Rule out CNS involvement", UNCERTAIN),
    ("cns-malignancy-involvement", "r/o leptomeningeal disease", UNCERTAIN),
    ("cns-malignancy-involvement", "Possible brain metastasis on MRI", UNCERTAIN),
    ("cns-malignancy-involvement", "CNS involvement?", UNCERTAIN),
    ("cns-malignancy-involvement", "No CNS involvement", None),
    ("cns-malignancy-involvement", "Negative for CNS involvement", None),
    ("cns-malignancy-involvement", "CNS involvement ruled out by MRI and LP", None),
    ("cns-malignancy-involvement", "CNS involvement: none", None),
    ("meningeal-involvement", "Leptomeningeal enhancement on MRI brain", PRESENT),
    ("epilepsy", "Epilepsy, unspecified, not intractable, without status epilepticus", PRESENT),
    ("epilepsy", "Seizure disorder (epileptic), well controlled on levetiracetam", PRESENT),
    ("epilepsy", "No CNS involvement, epilepsy since childhood", PRESENT),  # the denial ends at the comma
    ("stroke", "Denies seizure but had a stroke in 2019", PRESENT),
    ("cns-malignancy-involvement", "Multiple myeloma with no CNS involvement", None),
    ("seizure", "Seizure 2019, resolved", HISTORICAL),
    ("seizure", "h/o seizure", HISTORICAL),
    ("seizure", "Psychogenic non-epileptic seizures", UNCERTAIN),
    ("seizure", "Denies seizures", None),
    ("seizure", "No seizures in 2020. Seizure disorder since 2021", PRESENT),
    ("stroke", "Stroke with residual left hemiparesis", PRESENT),
    ("stroke", "s/p cerebral infarct 2018", HISTORICAL),
    ("psychosis", "Major depressive disorder, severe without psychotic features", None),
    ("psychosis", "Non-psychotic depression", None),
    ("parkinsons-disease", "Parkinson's disease", PRESENT),
    ("epilepsy", "Family history of epilepsy (mother)", None),
    ("seizure", "Seizure disorder, like her mother", PRESENT),
    ("multiple-myeloma", "FH: multiple myeloma (father)", None),
    ("multiple-myeloma", "IgG kappa myeloma", PRESENT),
    ("multiple-myeloma", "MGUS, at risk of progression to myeloma", UNCERTAIN),
    ("multiple-myeloma", "Screening for myeloma", UNCERTAIN),
    ("dementia", "Hypertension", None),
])
def test_text_only_condition(value_set, words, expected):
    hit = match(value_set, text(words))
    assert (hit.assertion if hit else None) == expected
    if hit:
        assert hit.coded.code is None and hit.coded.display == words  # cited as the text it is


def test_a_coding_with_only_a_display_is_read_as_words():
    concept = {"coding": [{"display": "Leptomeningeal myeloma"}]}
    assert match("cns-malignancy-involvement", concept).assertion == PRESENT
    local = {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.696580", "display": "Epilepsy"}]}
    assert match("epilepsy", local).assertion == PRESENT


def test_the_display_of_a_code_no_value_set_lists_is_read():
    child = {"coding": [{"system": SNOMED, "code": "313307000", "display": "Epileptic seizure"}]}
    assert match("epilepsy", child).assertion == PRESENT
    febrile = {"coding": [{"system": ICD10CM, "code": "R56.00", "display": "Simple febrile convulsions"}]}
    assert match("seizure", febrile) is None  # the variant the value set leaves out (text_exclusions)
    assert match("seizure", {"text": "Febrile seizure in childhood"}) is None
    assert match("seizure", {"text": "Febrile neutropenia, seizure disorder"}).assertion == PRESENT
    assert match("severe-brain-injury", {"text": "Mild traumatic brain injury (concussion) 2012"}) is None
    assert match("severe-brain-injury", {"text": "Traumatic brain injury with subdural hematoma"}).assertion == PRESENT
    assert match("seizure", {"coding": [{"system": ICD10CM, "code": "I10", "display": "Hypertension"}]}) is None


def test_a_code_in_the_value_set_is_present_unless_its_entry_hedges_or_denies_it():
    coded = {"coding": [{"system": ICD10CM, "code": "C79.31", "display": "Secondary malignant neoplasm of brain"}]}
    assert match("cns-malignancy-involvement", coded).assertion == PRESENT
    assert match("cns-malignancy-involvement", coded, "provisional").assertion == UNCERTAIN
    assert match("cns-malignancy-involvement", coded, "differential").assertion == UNCERTAIN
    assert match("cns-malignancy-involvement", {**coded, "text": "No brain metastases"}).assertion == UNCERTAIN
    assert match("cns-malignancy-involvement", {**coded, "text": "Rule out brain metastases"}).assertion == UNCERTAIN
    stroke = {"coding": [{"system": SNOMED, "code": "230690007"}], "text": "History of stroke"}
    assert match("stroke", stroke).assertion == HISTORICAL


def test_a_hedged_verification_status_makes_a_text_match_uncertain():
    assert match("epilepsy", text("Epilepsy"), "unconfirmed").assertion == UNCERTAIN


def test_one_affirmative_text_is_not_undone_by_a_negated_one():
    concept = {"coding": [{"display": "Leptomeningeal myeloma"}], "text": "No CNS involvement"}
    assert match("cns-malignancy-involvement", concept).assertion == PRESENT
