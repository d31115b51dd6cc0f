"""Myeloma diagnosis with relapsed/refractory status, order indications, CNS conditions."""

from __future__ import annotations

from datetime import date

from fhir_samples import AS_OF, ICD10CM, PATIENT, SNOMED, condition, searchset

from fhir_mappings.diagnoses import conditions_in, myeloma_diagnosis
from fhir_mappings.facts import Observed, ProgressionFinding, RetrievalOutcome, RetrievalState, Unknown
from fhir_mappings.patient_record import PatientRecord

PD = Observed(ProgressionFinding(date(2026, 10, 1), "serum M-protein 2.6 vs nadir 2.0", "serum-m-protein"))
NO_PD = Unknown("no progressive disease shown")
CNS_SETS = ("cns-malignancy-involvement", "epilepsy", "seizure", "stroke", "dementia", "parkinsons-disease", "psychosis")


def diagnose(*conditions, progression=NO_PD, treated=False, order=None, **kw):
    rec = PatientRecord.build(PATIENT, [searchset(*conditions)], **kw)
    return myeloma_diagnosis(rec, AS_OF, progression, treated, order)


def mm(rid, code, **kw):
    return condition(rid, [(SNOMED, "55342001", "Neoplastic disease"), (ICD10CM, code, "Multiple myeloma")], **kw)


def test_c90_02_is_relapsed_even_coded_without_the_dot():
    fact = diagnose(mm("c1", "C9002"))
    assert fact.value.relapsed_refractory is True and "C9002" in fact.value.basis
    assert fact.evidence[0].reference == "Condition/c1"


def test_clinical_status_relapse_on_snomed_myeloma():
    fact = diagnose(condition("c2", [(SNOMED, "109989006", "Multiple myeloma (disorder)")], clinical="relapse"))
    assert fact.value.relapsed_refractory is True and "relapse" in fact.value.basis


def test_c90_00_needs_treatment_history_or_progression():
    assert diagnose(mm("c3", "C90.00")).value.relapsed_refractory is None
    assert diagnose(mm("c3", "C90.00"), treated=True).value.relapsed_refractory is True
    with_pd = diagnose(mm("c3", "C90.00"), progression=PD)
    assert with_pd.value.relapsed_refractory is True and "progressive disease" in with_pd.value.basis


def test_active_snomed_myeloma_after_therapy_is_relapsed_or_refractory():
    active = condition("c5", [(SNOMED, "109989006", "Multiple myeloma (disorder)")], clinical="active")
    assert diagnose(active).value.relapsed_refractory is None  # untreated: status not shown
    treated = diagnose(active, treated=True)
    assert treated.value.relapsed_refractory is True and "active after anti-myeloma therapy" in treated.value.basis
    in_remission = condition("c6", [(SNOMED, "109989006", "Multiple myeloma (disorder)")], clinical="remission")
    assert diagnose(in_remission, treated=True).value.relapsed_refractory is False


def test_remission_only_is_false_and_text_only_myeloma_is_found():
    assert diagnose(mm("c4", "C90.01", clinical="remission")).value.relapsed_refractory is False
    text_only = diagnose(condition("c5", text="Multiple myeloma, IgG kappa"))
    assert text_only.value.myeloma[0].code.display == "Multiple myeloma, IgG kappa"
    assert isinstance(diagnose(condition("c6", text="Smoldering multiple myeloma")), Unknown)


def test_remission_code_with_progression_in_the_labs_is_relapsed():
    for remission in (mm("c4", "C90.01", clinical="remission"),
                      condition("c5", [(SNOMED, "109989006", "Multiple myeloma")], clinical="remission")):
        fact = diagnose(remission, progression=PD)
        assert fact.value.relapsed_refractory is True and "progressive disease on 2026-10-01" in fact.value.basis


def test_remission_code_is_not_a_contradiction_while_the_labs_could_not_be_read():
    unread = Unknown("serum M-protein: Observations not fully retrieved (timeout)", retrieval_failed=True)
    fact = diagnose(mm("c4", "C90.01", clinical="remission"), progression=unread)
    assert isinstance(fact, Unknown) and fact.retrieval_failed and "remission" in fact.reason


def test_myeloma_status_in_words():
    relapsed = diagnose(condition("t1", text="Relapsed/refractory multiple myeloma, IgG kappa"))
    assert relapsed.value.relapsed_refractory is True and "Relapsed/refractory" in relapsed.value.basis
    not_in_remission = condition("t2", text="Multiple myeloma, not in remission", clinical=None)
    assert diagnose(not_in_remission).value.relapsed_refractory is None
    assert diagnose(not_in_remission, treated=True).value.relapsed_refractory is True
    in_remission = condition("t3", text="Multiple myeloma in remission", clinical=None)
    assert diagnose(in_remission, treated=True).value.relapsed_refractory is False
    history = condition("t7", text="History of multiple myeloma", clinical="active")
    assert diagnose(history, treated=True).value.relapsed_refractory is None
    no_relapse = condition("t4", text="Multiple myeloma, no relapse", clinical=None)
    assert diagnose(no_relapse).value.relapsed_refractory is None
    assert isinstance(diagnose(condition("t5", text="Rule out multiple myeloma")), Unknown)  # not a diagnosis
    assert isinstance(diagnose(condition("t6", [(ICD10CM, "C90.02", "Multiple myeloma in relapse")],
                                         verification="differential")), Unknown)


def test_plasmacytoma_is_not_myeloma():
    assert isinstance(diagnose(condition("c7", [(ICD10CM, "C90.30", "Solitary plasmacytoma")])), Unknown)


def test_non_myeloma_order_indication_from_reason_code_and_reference():
    lymphoma = condition("dlbcl", [(ICD10CM, "C83.30", "Diffuse large B-cell lymphoma")])
    order = {
        "resourceType": "MedicationRequest", "id": "draft1", "status": "draft", "intent": "order",
        "reasonCode": [{"coding": [{"system": ICD10CM, "code": "C91.00"}], "text": "ALL"},
                       {"coding": [{"system": ICD10CM, "code": "C90.02"}]}],
        "reasonReference": [{"reference": "Condition/dlbcl"}],
    }
    fact = diagnose(mm("c1", "C90.02"), lymphoma, order=order)
    others = fact.value.other_indications
    assert [o.code.code for o in others] == ["C91.00", "C83.30"]
    assert others[0].reference == "MedicationRequest/draft1" and others[1].reference == "Condition/dlbcl"


def test_order_reasons_in_words():
    order = {
        "resourceType": "MedicationRequest", "id": "draft2", "status": "draft", "intent": "order",
        "reasonCode": [{"text": "Multiple myeloma, not in remission"}, {"text": "Possible multiple myeloma"},
                       {"coding": [{"display": "Smoldering multiple myeloma"}]}, {}],
    }
    others = diagnose(order=order).value.other_indications
    assert [o.code.display for o in others] == ["Smoldering multiple myeloma"]


def test_partial_condition_retrieval():
    partial = {"Condition": RetrievalOutcome(RetrievalState.PARTIAL, "page-cap")}
    assert diagnose(mm("c1", "C90.02"), retrieval=partial).value.relapsed_refractory is True
    undecided = diagnose(mm("c1", "C90.00"), retrieval=partial)
    assert isinstance(undecided, Unknown) and undecided.retrieval_failed
    assert diagnose(retrieval=partial).retrieval_failed


def test_no_myeloma_condition():
    fact = diagnose(condition("htn", [(ICD10CM, "I10", "Essential hypertension")]))
    assert isinstance(fact, Unknown) and not fact.retrieval_failed


def cns(*conds, **kw):
    return conditions_in(PatientRecord.build(PATIENT, [searchset(*conds)], **kw), CNS_SETS, AS_OF)


def test_cns_conditions_active_and_historical_with_dates_and_status():
    fact = cns(
        condition("epi", [(ICD10CM, "G40.909", "Epilepsy, unspecified")], clinical="inactive", onset="2001-06"),
        condition("cva", [(SNOMED, "230690007", "Cerebrovascular accident")], clinical="resolved", onset="2019-04-02"),
        condition("htn", [(ICD10CM, "I10", "Essential hypertension")]),
        condition("febrile", [(ICD10CM, "R56.00", "Simple febrile convulsions")]),
        condition("future", [(ICD10CM, "G20.A1", "Parkinson's disease")], onset="2027-01-01"),
    )
    found = {f.reference: f for f in fact.value}
    assert set(found) == {"Condition/epi", "Condition/cva"}
    assert (found["Condition/epi"].value_set, found["Condition/epi"].clinical_status) == ("epilepsy", "inactive")
    assert found["Condition/epi"].onset == date(2001, 6, 1)
    assert found["Condition/cva"].value_set == "stroke"


def test_no_cns_condition_is_an_empty_observed_unless_retrieval_failed():
    assert cns(condition("htn", [(ICD10CM, "I10", "Hypertension")])) == Observed((), ())
    failed = {"Condition": RetrievalOutcome(RetrievalState.FAILED, "http-5xx")}
    assert cns(retrieval=failed).retrieval_failed
    found = cns(condition("epi", [(ICD10CM, "G40.909", "Epilepsy")]), retrieval=failed)
    assert isinstance(found, Observed) and found.value[0].reference == "Condition/epi"  # a contradiction stands


def test_negated_text_does_not_count_and_hedged_text_is_uncertain():
    fact = cns(condition("t1", text="Rule out CNS involvement"), condition("t2", text="CNS involvement by myeloma"),
               condition("t3", text="No CNS involvement"))
    found = {f.reference: f.assertion for f in fact.value}
    assert found == {"Condition/t1": "uncertain", "Condition/t2": "present"}


def test_an_entry_asserting_one_concept_and_hedging_another_counts_as_the_asserted_one():
    fact = cns(condition("t6", text="Possible CNS involvement. Epilepsy since childhood"))
    assert [(f.value_set, f.assertion) for f in fact.value] == [("epilepsy", "present")]


def test_text_only_cns_pathology_is_cited_as_the_text():
    fact = cns(condition("t4", text="Seizure disorder, on levetiracetam", clinical="active"),
               condition("t5", text="History of stroke", clinical="resolved"))
    found = {f.reference: f for f in fact.value}
    assert found["Condition/t4"].value_set == "seizure" and found["Condition/t4"].code.code is None
    assert found["Condition/t5"].assertion == "historical" and found["Condition/t5"].value_set == "stroke"
    assert {e.element for e in fact.evidence} == {"Condition.code.text"}
    assert fact.evidence[0].value.startswith("Seizure disorder, on levetiracetam")


def test_provisional_coded_condition_is_uncertain():
    brain = [(ICD10CM, "C79.31", "Secondary malignant neoplasm of brain")]
    fact = cns(condition("c1", brain, verification="provisional"))
    assert fact.value[0].assertion == "uncertain"


def test_abatement_without_clinical_status_is_judged_on_its_whole_span():
    cns_myeloma = [(ICD10CM, "C79.32", "Secondary malignant neoplasm of cerebral meninges")]
    statuses = {
        raw: cns(condition("m", cns_myeloma, clinical=None, abatementDateTime=raw)).value[0].clinical_status
        for raw in ("2025-06-30", "2026-10", "2026-11", "2027")
    }
    assert statuses == {"2025-06-30": "inactive", "2026-10": "inactive", "2026-11": None, "2027": None}
    resolved = condition("s", cns_myeloma, clinical=None, abatementString="resolved after IT chemotherapy")
    assert cns(resolved).value[0].clinical_status == "inactive"
    stated = condition("a", cns_myeloma, clinical="active", abatementDateTime="2025-06-30")
    assert cns(stated).value[0].clinical_status == "active"  # a stated status is never overridden


def test_condition_dated_only_to_a_month_or_year_is_judged_on_its_whole_span():
    epilepsy = [(ICD10CM, "G40.909", "Epilepsy")]
    assert cns(condition("past", epilepsy, onset="2026-11")).value  # 2026-11-01 .. 30 reaches past AS_OF: kept
    assert cns(condition("year", epilepsy, onset="2026")).value
    assert cns(condition("later", epilepsy, onset="2027-01")).value == ()  # wholly after AS_OF
