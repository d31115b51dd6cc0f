"""Lines of therapy as real charts record the phases of a line: transplants coded every way (or only
named), phases stated in words (category, CarePlan, note, reason), lymphodepletion before CAR-T and
supportive drugs given around the regimens (module docstring of lines_of_therapy)."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources

import pytest

from fhir_mappings.lines_of_therapy import last_regimen_last_dose, lines_of_therapy
from fhir_mappings.patient_record import PatientRecord

AS_OF = date(2026, 11, 24)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
EPIC_ERX = "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288"  # a local medication code system, as Epic sends
CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
RX = {  # RxNorm ingredient codes of fhir_mappings/value_sets (anti-myeloma-agents, tocilizumab)
    "daratumumab": "1721947", "lenalidomide": "342369", "dexamethasone": "3264", "bortezomib": "358258",
    "carfilzomib": "1302966", "pomalidomide": "1369713", "cyclophosphamide": "3002", "melphalan": "6718",
    "tocilizumab": "612865",
}


def drug(name):
    if name in RX:
        return {"coding": [{"system": EPIC_ERX, "code": f"ERX-{name.upper()}", "display": name.upper()},
                           {"system": RXNORM, "code": RX[name], "display": name}], "text": name}
    return {"coding": [{"system": EPIC_ERX, "code": f"ERX-{name.upper()}", "display": name.upper()}], "text": name}


def statement(rid, name, start, end, **extra):
    return {
        "resourceType": "MedicationStatement", "id": rid, "status": "completed", "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": drug(name), "effectivePeriod": {"start": start, "end": end}, **extra,
    }


def request(rid, name, start, end, **extra):
    return {
        "resourceType": "MedicationRequest", "id": rid, "status": "completed", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": drug(name), "authoredOn": start,
        "dosageInstruction": [{"text": "Take 1 capsule by mouth daily on days 1-21 of each 28-day cycle",
                               "timing": {"repeat": {"boundsPeriod": {"start": start, "end": end}}}}],
        **extra,
    }


def administration(rid, name, day, **extra):
    return {
        "resourceType": "MedicationAdministration", "id": rid, "status": "completed",
        "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": drug(name),
        "effectiveDateTime": f"{day}T09:00:00-05:00", **extra,
    }


def procedure(rid, day, code=None, text=None):
    concept = {"coding": [{"system": code[0], "code": code[1]}] if code else []}
    if text:
        concept["text"] = text
    return {"resourceType": "Procedure", "id": rid, "status": "completed", "subject": {"reference": "Patient/p1"},
            "code": concept, "performedDateTime": day}


def induction():
    return [statement("dara", "daratumumab", "2022-01-10", "2022-05-20"),
            statement("len1", "lenalidomide", "2022-01-10", "2022-05-20"),
            statement("dex1", "dexamethasone", "2022-01-10", "2022-05-20")]


def maintenance(start="2022-09-15", **extra):
    return [request("len-m", "lenalidomide", start, "2024-06-30", **extra)]


def two_lines():
    return induction() + [statement("carf", "carfilzomib", "2024-07-15", "2026-09-30"),
                          statement("pom", "pomalidomide", "2024-07-15", "2026-09-30"),
                          statement("dex2", "dexamethasone", "2024-07-15", "2026-09-30")]


def count(resources, consolidation_in_line=False):
    fact = lines_of_therapy(PatientRecord.build("p1", resources), AS_OF, consolidation_in_line)
    return fact.value.minimum, fact.value.maximum


# ------------------------------------------------------------------------------------ transplants

TRANSPLANTS = {
    "CPT autologous": procedure("hsct", "2022-06-30", (CPT, "38241")),
    "CPT allogeneic": procedure("hsct", "2022-06-30", (CPT, "38240")),
    "SNOMED type not stated": procedure("hsct", "2022-06-30", (SNOMED, "234336002")),
    "ICD-10-PCS allogeneic unrelated": procedure("hsct", "2022-06-30", (PCS, "30243Y3")),
    "ICD-10-PCS autologous": procedure("hsct", "2022-06-30", (PCS, "30243Y0")),
    "text: stem cell transplant": procedure("hsct", "2022-06-30", text="Stem cell transplant"),
    "text: ASCT": procedure("hsct", "2022-06-30", text="ASCT day 0 (Mel200)"),
    "text: auto-HCT": procedure("hsct", "2022-06-30", text="Auto-HCT"),
    "local code, text: autologous SCT": procedure("hsct", "2022-06-30", ("urn:oid:1.2.3.4", "PROC9913"), "Autologous SCT"),
}


@pytest.mark.parametrize("name", TRANSPLANTS)
def test_a_transplant_counts_whatever_its_code_or_name(name):
    # lenalidomide alone 4 months after induction ended: maintenance after a transplant (one line);
    # without the transplant the gap leaves it open (continuation or a new line)
    assert count(induction() + maintenance()) == (1, 2)
    record = induction() + [TRANSPLANTS[name]] + maintenance()
    assert count(record) == (1, 1)
    line = lines_of_therapy(PatientRecord.build("p1", record), AS_OF, False).value.lines[0]
    assert "Procedure/hsct" in line.references


@pytest.mark.parametrize("text", ["Stem cell apheresis for autologous stem cell transplant", "Autologous stem cell harvest",
                                  "Peripheral blood stem cell collection (mobilization) for autologous transplant"])
def test_a_stem_cell_collection_is_not_the_transplant(text):
    assert count(induction() + [procedure("pbsc", "2022-06-02", text=text)] + maintenance()) == (1, 2)


def test_notes_on_the_transplant_naming_its_conditioning_do_not_hide_it():
    asct = dict(procedure("asct", "2022-06-30", (CPT, "38241")), note=[{"text": "Conditioning: melphalan 200 mg/m2 day -2"}])
    assert count(induction() + [asct] + maintenance()) == (1, 1)


def test_a_drug_named_after_the_transplant_is_not_a_transplant():
    filgrastim = statement("gcsf", "filgrastim (post-ASCT engraftment)", "2022-07-05", "2022-07-15")
    assert count(induction() + [filgrastim] + maintenance()) == (1, 2)


def test_tandem_autologous_then_allogeneic_transplant_is_one_line():
    record = induction() + [procedure("auto", "2022-06-30", (CPT, "38241")), procedure("allo", "2022-10-20", (CPT, "38240")),
                            statement("flu-mel", "melphalan", "2022-10-15", "2022-10-16")] + maintenance("2023-01-20")
    assert count(record) == (1, 1)


# ------------------------------------------------------------------------------------ phases in words

LABELS = {
    "MedicationRequest.category text": {"category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                                                                  "code": "outpatient"}], "text": "Maintenance"}]},
    "courseOfTherapyType": {"courseOfTherapyType": {"text": "Maintenance therapy post ASCT"}},
    "note": {"note": [{"text": "Lenalidomide maintenance 10 mg, started after count recovery"}]},
    "reasonCode": {"reasonCode": [{"text": "Multiple myeloma, maintenance therapy"}]},
    "CarePlan via basedOn": {"basedOn": [{"reference": "CarePlan/maint"}]},
    "note after induction": {"note": [{"text": "Post-induction maintenance after ASCT"}]},
}
CAREPLAN = {"resourceType": "CarePlan", "id": "maint", "status": "active", "intent": "plan",
            "subject": {"reference": "Patient/p1"}, "title": "Post-transplant maintenance (lenalidomide)"}


@pytest.mark.parametrize("label", LABELS)
def test_maintenance_labelled_as_such_stays_in_the_line_whatever_its_start(label):
    late = induction() + [procedure("asct", "2022-06-30", (CPT, "38241"))]
    # unlabelled, lenalidomide 9 months after the transplant is past the 180-day window and 10 months after
    # the induction's last dose: a continuation or a new line
    assert count(late + maintenance("2023-03-30")) == (1, 2)
    labelled = late + maintenance("2023-03-30", **LABELS[label]) + [CAREPLAN]
    assert count(labelled) == (1, 1) and count(labelled, consolidation_in_line=True) == (1, 1)


def test_consolidation_labelled_as_such_is_in_the_line_for_769_and_ambiguous_for_481():
    late = induction() + [procedure("asct", "2022-06-30", (CPT, "38241"))]
    vrd = [statement("bor-c", "bortezomib", "2023-02-06", "2023-04-30", category={"text": "Consolidation"}),
           request("len-c", "lenalidomide", "2023-02-06", "2023-04-30", category=[{"text": "Consolidation (VRd x2)"}])]
    assert count(late + vrd, consolidation_in_line=True) == (1, 1)
    assert count(late + vrd, consolidation_in_line=False) == (1, 2)
    unlabelled = [{k: v for k, v in r.items() if k != "category"} for r in vrd]
    assert count(late + unlabelled, consolidation_in_line=True) == (2, 2)  # 7 months after: a new line


def test_medication_statement_category_is_one_codeable_concept():
    late = induction() + [procedure("asct", "2022-06-30", (CPT, "38241"))]
    labelled = statement("len-m", "lenalidomide", "2023-03-30", "2024-06-30", category={"text": "Maintenance"})
    assert count(late + [labelled]) == (1, 1)


def test_maintenance_labelled_after_induction_without_transplant_is_the_same_line():
    assert count(induction() + maintenance("2022-10-20")) == (1, 2)
    assert count(induction() + maintenance("2022-10-20", note=[{"text": "Maintenance"}])) == (1, 1)


def test_a_label_naming_several_phases_leaves_the_decision_to_the_dates():
    mixed = {"note": [{"text": "Induction VRd x4, then ASCT, then maintenance"}]}
    late = induction() + [procedure("asct", "2022-06-30", (CPT, "38241"))]
    assert count(late + maintenance("2023-03-30", **mixed)) == count(late + maintenance("2023-03-30")) == (1, 2)


def test_a_regimen_labelled_induction_after_a_transplant_starts_a_new_line():
    late = induction() + [procedure("asct", "2022-06-30", (CPT, "38241"))]

    def krd(**extra):
        return [statement("carf", "carfilzomib", "2022-09-15", "2023-02-01", **extra),
                request("len2", "lenalidomide", "2022-09-15", "2023-02-01", **extra)]

    assert count(late + krd()) == (1, 2)  # unlabelled: consolidation or a new line
    assert count(late + krd(note=[{"text": "Re-induction (KRd) for early relapse"}])) == (2, 2)


def test_melphalan_labelled_conditioning_stays_in_the_line_beyond_60_days():
    mel = administration("mel", "melphalan", "2022-05-28", note=[{"text": "High-dose melphalan conditioning"}])
    unlabelled = administration("mel", "melphalan", "2022-05-28")
    asct = procedure("asct", "2022-09-01", (CPT, "38241"))
    assert count(induction() + [unlabelled, asct]) == (2, 2)
    assert count(induction() + [mel, asct]) == (1, 1)


# ------------------------------------------------------------------------------------ lymphodepletion


def flu_cy(day_1, **extra):
    days = [f"2026-11-{d:02d}" for d in range(day_1, day_1 + 3)]
    return ([administration(f"flu-{d}", "fludarabine", d, **extra) for d in days]
            + [administration(f"cy-{d}", "cyclophosphamide", d, **extra) for d in days])


def test_fludarabine_with_cyclophosphamide_is_lymphodepletion_not_a_line():
    record = two_lines() + flu_cy(16)  # days -5 to -3 of the CAR-T being ordered
    assert count(record) == (2, 2)
    assert "cyclophosphamide" not in {i for line in lines_of_therapy(PatientRecord.build("p1", record), AS_OF, False).value.lines
                                      for i in line.ingredients}
    assert last_regimen_last_dose(PatientRecord.build("p1", record), AS_OF).value == date(2026, 9, 30)


def test_cyclophosphamide_before_a_car_t_infusion_or_labelled_lymphodepletion_is_not_a_line():
    cy = [administration(f"cy-{d}", "cyclophosphamide", f"2025-03-{d:02d}") for d in (3, 4, 5)]
    assert count(two_lines()[:3] + cy) == (2, 2)  # alone, cyclophosphamide is an Appendix B regimen
    infusion = procedure("cart", "2025-03-10", text="CAR-T cell therapy infusion")
    assert count(two_lines()[:3] + cy + [infusion]) == (1, 2)  # the infusion's product is not stated
    reason = {"reasonCode": [{"text": "Lymphodepleting chemotherapy prior to CAR T-cell infusion"}]}
    labelled = [administration(f"cy-{d}", "cyclophosphamide", f"2025-03-{d:02d}", **reason) for d in (3, 4, 5)]
    assert count(two_lines()[:3] + labelled) == (1, 1)
    line = lines_of_therapy(PatientRecord.build("p1", two_lines()[:3] + labelled), AS_OF, False).value.lines[0]
    assert "lymphodepletion" in line.components and "MedicationAdministration/cy-3" in line.references
    assert "cyclophosphamide" not in line.ingredients and line.end == date(2022, 5, 20)


def test_cyclophosphamide_alone_in_the_days_before_the_order_may_be_its_lymphodepletion():
    cy = [administration(f"cy-{d}", "cyclophosphamide", f"2026-11-{d:02d}") for d in (17, 18, 19)]
    assert count(two_lines() + cy) == (2, 3)  # lymphodepletion of the CAR-T ordered, or a third line


def test_lymphodepletion_before_any_recorded_line_is_not_a_line():
    assert count(flu_cy(16)) == (0, 0)


# ------------------------------------------------------------------------------------ supportive drugs


@pytest.mark.parametrize("purpose", [{"reasonCode": [{"text": "Cytokine release syndrome, grade 2"}]},
                                     {"note": [{"text": "Premedication before daratumumab"}]},
                                     {"dosageInstruction": [{"text": "8 mg IV once for chemotherapy-induced nausea"}]}])
def test_a_steroid_given_for_a_supportive_purpose_is_no_line_even_in_the_maximum(purpose):
    dex = administration("dex-s", "dexamethasone", "2023-03-01")
    assert count(two_lines() + [dex]) == (2, 3)  # dexamethasone alone: maybe a steroid-only course
    assert count(two_lines() + [dict(dex, **purpose)]) == (2, 2)

SUPPORTIVE = ["ondansetron", "filgrastim", "pegfilgrastim", "acyclovir", "zoledronic acid", "denosumab",
              "immune globulin (IVIG)", "tocilizumab", "mesna", "allopurinol", "trimethoprim-sulfamethoxazole",
              "levetiracetam", "plerixafor", "rasburicase", "fluconazole"]


def test_supportive_drugs_are_not_lines_of_therapy():
    support = [administration(f"s{i}", name, f"2023-{(i % 12) + 1:02d}-15") for i, name in enumerate(SUPPORTIVE)]
    support += [statement(f"t{i}", name, "2025-02-01", "2025-03-01") for i, name in enumerate(SUPPORTIVE)]
    fact = lines_of_therapy(PatientRecord.build("p1", two_lines() + support), AS_OF, False)
    assert (fact.value.minimum, fact.value.maximum) == (2, 2)
    listed = {i for line in fact.value.lines for i in line.ingredients}
    assert listed == {"carfilzomib", "daratumumab", "dexamethasone", "lenalidomide", "pomalidomide"}


@pytest.mark.parametrize("vs_id", ["autologous-hsct", "allogeneic-hsct", "hsct-type-not-stated", "stem-cell-collection",
                                   "fludarabine"])
def test_transplant_and_fludarabine_codes_are_sourced_and_confidence_marked(vs_id):
    data = json.loads((resources.files("fhir_mappings") / "value_sets" / f"{vs_id}.json").read_text(encoding="utf-8"))
    assert data["id"] == vs_id and data["codes"] and data["text_terms"]
    for entry in data["codes"]:
        assert entry["system"].startswith("http") and entry["display"] and entry["source"]
        assert entry["confidence"] in ("C", "P")
