"""Line-of-therapy counting on realistic R4 medication histories (module docstring of lines_of_therapy)."""

from __future__ import annotations

from datetime import date

from fhir_mappings.facts import Observed, RetrievalOutcome, RetrievalState, Unknown
from fhir_mappings.lines_of_therapy import last_regimen_last_dose, lines_of_therapy
from fhir_mappings.patient_record import PatientRecord

AS_OF = date(2026, 11, 24)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
RX = {  # (code, display) as EHRs send them: IN, SCD or SBD
    "daratumumab": ("1721947", "daratumumab"),
    "lenalidomide": ("342369", "lenalidomide"),
    "dexamethasone": ("197582", "dexamethasone 4 MG Oral Tablet"),
    "carfilzomib": ("1302966", "carfilzomib"),
    "pomalidomide": ("1369713", "pomalidomide"),
    "bortezomib": ("358258", "bortezomib"),
    "melphalan": ("311487", "melphalan 50 MG Injection"),
}


def statement(rid, drug, start, end=None, status="completed", **extra):
    code, display = RX[drug]
    period = {"start": start, **({"end": end} if end else {})}
    return {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display},
        "effectivePeriod": period,
        **extra,
    }


def asct(rid, day):
    return {
        "resourceType": "Procedure",
        "id": rid,
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "38241"}], "text": "Autologous HSCT"},
        "performedDateTime": day,
    }


def drd_asct_r():
    return [
        statement("dara", "daratumumab", "2022-01-10", "2022-05-20"),
        statement("len1", "lenalidomide", "2022-01-10", "2022-05-20"),
        statement("dex1", "dexamethasone", "2022-01-12", "2022-05-20"),
        statement("mel", "melphalan", "2022-06-28", "2022-06-28"),
        asct("asct", "2022-06-30"),
        statement("len-m", "lenalidomide", "2022-09-15", "2023-10-01", status="stopped"),
    ]


def krd():
    return [
        statement("carf", "carfilzomib", "2023-10-20", "2024-09-30"),
        statement("len2", "lenalidomide", "2023-10-20", "2024-09-30"),
        statement("dex2", "dexamethasone", "2023-10-22", "2024-09-30"),
    ]


def pd():
    return [statement("pom", "pomalidomide", "2025-01-05", "2026-10-15"), statement("dex3", "dexamethasone", "2025-01-05", "2026-10-15")]


def count(resources, consolidation_in_line=False, retrieval=None):
    record = PatientRecord.build("p1", resources, retrieval)
    return lines_of_therapy(record, AS_OF, consolidation_in_line)


def test_induction_transplant_maintenance_is_one_line():
    fact = count(drd_asct_r())
    assert isinstance(fact, Observed)
    assert (fact.value.minimum, fact.value.maximum) == (1, 1)
    line = fact.value.lines[0]
    assert "autologous-hsct" in line.components and "maintenance" in line.components
    assert {"imid", "anti-cd38"} <= fact.value.classes_received


def test_then_krd_is_two_then_pd_is_three():
    two = count(drd_asct_r() + krd())
    assert (two.value.minimum, two.value.maximum) == (2, 2)
    assert "proteasome-inhibitor" in two.value.lines[1].classes
    three = count(drd_asct_r() + krd() + pd())
    assert (three.value.minimum, three.value.maximum) == (3, 3)
    assert three.value.lines[2].ingredients == ("dexamethasone", "pomalidomide")


def test_monthly_refills_of_the_same_drugs_do_not_start_new_lines():
    refills = [statement(f"pom-{m}", "pomalidomide", f"2025-{m:02d}-03", f"2025-{m:02d}-24") for m in range(1, 10)]
    fact = count(refills)
    assert (fact.value.minimum, fact.value.maximum) == (1, 1)


def test_adding_a_drug_months_later_is_a_new_line():
    fact = count([statement("len", "lenalidomide", "2024-01-01", "2024-12-01", status="stopped"), statement("dara", "daratumumab", "2024-07-01")])
    assert (fact.value.minimum, fact.value.maximum) == (2, 2)


def test_explicit_careplan_grouping_wins_over_dates():
    plan = {"resourceType": "CarePlan", "id": "vrd", "status": "active", "intent": "plan", "subject": {"reference": "Patient/p1"}, "title": "VRd"}
    based = {"basedOn": [{"reference": "CarePlan/vrd"}]}
    resources = [plan, statement("v", "bortezomib", "2024-01-01", **based), statement("r", "lenalidomide", "2024-03-15", **based)]
    fact = count(resources)
    assert (fact.value.minimum, fact.value.maximum) == (1, 1)
    # without the plan, a drug added 74 days later is a second regimen
    loose = count([statement("v", "bortezomib", "2024-01-01"), statement("r", "lenalidomide", "2024-03-15")])
    assert (loose.value.minimum, loose.value.maximum) == (2, 2)


def test_undated_regimen_widens_the_interval():
    undated = statement("old", "bortezomib", "2020-01-01")
    del undated["effectivePeriod"]
    fact = count(drd_asct_r() + [undated])
    assert (fact.value.minimum, fact.value.maximum) == (1, 2)


def test_partial_dates_that_may_fall_within_28_days_widen_the_interval():
    fact = count([statement("v", "bortezomib", "2024-01"), statement("r", "lenalidomide", "2024-02")])
    assert (fact.value.minimum, fact.value.maximum) == (1, 2)


def test_post_transplant_consolidation_depends_on_policy_reading():
    consolidation = [statement("vrd-c", "bortezomib", "2022-09-01", "2022-10-30", status="completed")]
    base = [
        statement("len1", "lenalidomide", "2022-01-10", "2022-05-20"),
        statement("dara", "daratumumab", "2022-01-10", "2022-05-20"),
        asct("asct", "2022-06-30"),
        statement("carf-c", "carfilzomib", "2022-09-01", "2022-10-30"),
    ] + consolidation
    # unlabelled, a non-maintenance regimen after the transplant is consolidation or a new line: either policy
    for consolidation_in_line in (False, True):
        fact = count(base, consolidation_in_line)
        assert (fact.value.minimum, fact.value.maximum) == (1, 2)
    # MedicationStatement.category is one CodeableConcept in R4 (a list would make the statement malformed)
    marked = [dict(r, category={"text": "Consolidation"}) if r["id"] in ("carf-c", "vrd-c") else r for r in base]
    assert (count(marked, True).value.minimum, count(marked, True).value.maximum) == (1, 1)  # 769 names it
    # 481 names induction, HSCT and maintenance only; IMWG counts consolidation in the line: unknown, not 2
    assert (count(marked, False).value.minimum, count(marked, False).value.maximum) == (1, 2)


def test_steroid_only_course_counts_only_in_the_maximum():
    fact = count(drd_asct_r() + [statement("pred", "dexamethasone", "2024-06-01", "2024-06-05")])
    assert (fact.value.minimum, fact.value.maximum) == (1, 2)


def test_no_therapy_is_unknown_and_failed_retrieval_is_indeterminate():
    assert isinstance(count([]), Unknown) and not count([]).retrieval_failed
    failed = count(drd_asct_r(), retrieval={"MedicationRequest": RetrievalOutcome(RetrievalState.FAILED, "timeout")})
    assert isinstance(failed, Unknown) and failed.retrieval_failed


def test_last_dose_of_last_regimen():
    record = PatientRecord.build("p1", drd_asct_r() + krd() + pd())
    fact = last_regimen_last_dose(record, AS_OF)
    assert fact.value == date(2026, 10, 15)
    assert fact.evidence[0].reference in ("MedicationStatement/pom", "MedicationStatement/dex3")


def test_last_dose_unknown_when_last_regimen_is_running_without_dose_dates():
    ongoing = [statement("pom", "pomalidomide", "2025-01-05", status="active")]
    fact = last_regimen_last_dose(PatientRecord.build("p1", drd_asct_r() + ongoing), AS_OF)
    assert isinstance(fact, Unknown)


def test_last_dose_from_administrations_of_the_last_regimen():
    admin = {
        "resourceType": "MedicationAdministration", "id": "a1", "status": "completed", "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "2375141", "display": "Darzalex Faspro"}]},
        "effectiveDateTime": "2026-09-30T10:15:00-05:00",
    }
    running = statement("pom", "pomalidomide", "2026-08-01", status="active")
    fact = last_regimen_last_dose(PatientRecord.build("p1", [running, admin]), AS_OF)
    assert fact.value == date(2026, 9, 30)


def test_steroids_alone_show_no_certain_line():
    fact = count([statement("dex", "dexamethasone", "2025-01-01", "2025-01-05")])
    assert (fact.value.minimum, fact.value.maximum) == (0, 1)
