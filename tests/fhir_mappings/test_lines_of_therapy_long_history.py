"""Lines of therapy on a long chart, as an EHR holds ten years of myeloma treatment: every infusion a
MedicationAdministration, every oral cycle a MedicationRequest refill, weekly dexamethasone statements.
The count must not depend on how many resources a regimen is recorded as, nor on their order."""

from __future__ import annotations

import random
from datetime import date, timedelta

from fhir_mappings.lines_of_therapy import last_regimen_last_dose, lines_of_therapy
from fhir_mappings.patient_record import PatientRecord

AS_OF = date(2026, 11, 24)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
IN = {  # RxNorm ingredient codes (fhir_mappings/value_sets/anti-myeloma-agents.json)
    "bortezomib": "358258", "lenalidomide": "342369", "dexamethasone": "3264", "daratumumab": "1721947",
    "carfilzomib": "1302966", "pomalidomide": "1369713", "selinexor": "2178390", "teclistamab": "2619426",
    "melphalan": "6718",
}


def concept(drug):
    return {"coding": [{"system": RXNORM, "code": IN[drug], "display": drug}], "text": drug}


def administration(rid, drug, day):
    return {
        "resourceType": "MedicationAdministration", "id": rid, "status": "completed",
        "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": concept(drug),
        "effectiveDateTime": f"{day.isoformat()}T10:30:00-05:00",
    }


def refill(rid, drug, start, days=21):
    bounds = {"start": start.isoformat(), "end": (start + timedelta(days=days - 1)).isoformat()}
    return {
        "resourceType": "MedicationRequest", "id": rid, "status": "completed", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": concept(drug),
        "authoredOn": start.isoformat(), "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": bounds}}}],
    }


def cycles(first, count, length=28):
    return [first + timedelta(days=length * i) for i in range(count)]


def regimen(tag, first, count, infused=(), oral=(), weekly_dex=True, infusion_days=(0, 7, 14)):
    """``count`` 28-day cycles: infusions on ``infusion_days`` of each cycle, oral drugs as one 21-day
    refill per cycle, dexamethasone weekly (listed last on each day, as a pharmacy verifies it last)."""
    out = []
    for n, day in enumerate(cycles(first, count)):
        out += [administration(f"{tag}-{drug}-{n}-{d}", drug, day + timedelta(days=d)) for drug in infused for d in infusion_days]
        out += [refill(f"{tag}-{drug}-{n}", drug, day) for drug in oral]
        if weekly_dex:
            out += [administration(f"{tag}-dex-{n}-{d}", "dexamethasone", day + timedelta(days=d)) for d in (0, 7, 14, 21)]
    return out


def ten_year_chart():
    transplant = {
        "resourceType": "Procedure", "id": "asct", "status": "completed", "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "38241"}], "text": "Autologous HSCT"},
        "performedDateTime": "2016-09-20",
    }
    return (
        regimen("vrd", date(2016, 2, 1), 6, infused=("bortezomib",), oral=("lenalidomide",))       # induction
        + [administration("mel", "melphalan", date(2016, 9, 18)), transplant]                      # conditioning, ASCT
        + regimen("len-m", date(2016, 12, 5), 36, oral=("lenalidomide",), weekly_dex=False)        # maintenance
        + regimen("dkd", date(2019, 11, 11), 24, infused=("daratumumab", "carfilzomib"))           # line 2
        + regimen("xvd", date(2021, 10, 4), 20, infused=("bortezomib",), oral=("selinexor",))      # line 3
        + regimen("tec", date(2023, 5, 15), 44, infused=("teclistamab",), infusion_days=(0, 14))   # line 4
    )


def summary(fact):
    """Everything the fact says, with references and evidence as sets (their order follows the record)."""
    lines = [(line.number, line.start, line.end, line.ingredients, line.classes, line.components,
              sorted(line.references)) for line in fact.value.lines]
    return fact.value.minimum, fact.value.maximum, fact.value.classes_received, lines, sorted(fact.evidence, key=repr)


def test_ten_years_of_cycles_are_four_lines_whatever_the_order_of_the_resources():
    chart = ten_year_chart()
    assert len(chart) > 700
    fact = lines_of_therapy(PatientRecord.build("p1", chart), AS_OF, False)
    assert (fact.value.minimum, fact.value.maximum) == (4, 4)
    described = [(line.start, line.end, line.ingredients, line.components) for line in fact.value.lines]
    assert described == [
        (date(2016, 2, 1), date(2019, 9, 1), ("bortezomib", "dexamethasone", "lenalidomide", "melphalan"),
         ("induction", "conditioning", "autologous-hsct", "maintenance")),
        (date(2019, 11, 11), date(2021, 9, 6), ("carfilzomib", "daratumumab", "dexamethasone"), ("regimen",)),
        (date(2021, 10, 4), date(2023, 4, 10), ("bortezomib", "dexamethasone", "selinexor"), ("regimen",)),
        (date(2023, 5, 15), date(2026, 9, 21), ("dexamethasone", "teclistamab"), ("regimen",)),
    ]
    assert sum(len(line.references) for line in fact.value.lines) == len(chart)
    shuffled = chart[:]
    random.Random(20).shuffle(shuffled)
    assert summary(lines_of_therapy(PatientRecord.build("p1", shuffled), AS_OF, False)) == summary(fact)
    assert last_regimen_last_dose(PatientRecord.build("p1", shuffled), AS_OF).value == date(2026, 9, 21)
