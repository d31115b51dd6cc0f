"""A fake FactSource for policy tests: a typical patient who meets CP.PHAR.481 on 2026-11-24, whose
facts tests vary with ``dataclasses.replace``. Facts are stored as the mappings would return them
(``Observed``/``Unknown``); collections are filtered by the value sets a check asks for, as
``ClinicalFacts`` does, so a check that asks for the wrong value set fails its test."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from fhir_mappings.facts import (
    AgeBounds,
    CellDose,
    Coded,
    ConditionFinding,
    CoverageFinding,
    DiagnosisFinding,
    Evidence,
    Exposure,
    FreeLightChains,
    LineOfTherapy,
    LinesOfTherapy,
    Measurement,
    Observed,
    OrderedProduct,
    TocilizumabRequest,
    Unknown,
)

AS_OF = date(2026, 11, 24)
NUCC = "http://nucc.org/provider-taxonomy"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NOT_SHOWN = Unknown("no result on the record")
RETRIEVAL_FAILED = Unknown("Observation query timed out", retrieval_failed=True)

ABECMA_ORDER = {
    "resourceType": "MedicationRequest",
    "id": "car-t-1",
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "2536449"}], "text": "Abecma"},
}
TOCILIZUMAB_ORDER = {
    "resourceType": "MedicationRequest",
    "id": "toc-1",
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "612865"}], "text": "tocilizumab"},
}


def myeloma(relapsed: bool | None = True) -> Observed:
    mm = ConditionFinding("Condition/mm", Coded(ICD10, "C90.02", "Multiple myeloma in relapse"), "multiple-myeloma",
                          "relapse", date(2021, 3, 1))
    basis = "C90.02 in relapse" if relapsed else None
    return Observed(DiagnosisFinding((mm,), relapsed, basis), (Evidence("Condition/mm", "code", "C90.02"),))


def not_myeloma(*other: ConditionFinding) -> Observed:
    """No myeloma on the record; ``other`` are the order's non-myeloma indications."""
    return Observed(DiagnosisFinding((), None, None, tuple(other)))


def measurement(value: float, unit: str, effective: date, ref: str = "Observation/lab") -> Observed:
    return Observed(Measurement(value, unit, effective, ref), (Evidence(ref, "valueQuantity", f"{value:g}", unit),))


def flc(involved_mg_dl: float | None, ratio_abnormal: bool | None, effective: date = date(2026, 11, 10)) -> Observed:
    ratio = 8.0 if ratio_abnormal else 1.1
    return Observed(
        FreeLightChains(effective, ratio, ratio_abnormal, "default 0.26-1.65", "kappa" if ratio_abnormal else None,
                        involved_mg_dl, involved_mg_dl, 1.2),
        (Evidence("Observation/flc-ratio", "valueQuantity", f"{ratio:g}"),),
    )


def lines(minimum: int, maximum: int | None = None, classes=("imid", "proteasome-inhibitor", "anti-cd38")) -> Observed:
    maximum = minimum if maximum is None else maximum
    items = tuple(
        LineOfTherapy(n + 1, date(2021 + n, 1, 1), date(2021 + n, 6, 1), ("drug",), frozenset(classes), ("induction",),
                      (f"MedicationStatement/line{n + 1}",))
        for n in range(minimum)
    )
    return Observed(LinesOfTherapy(minimum, maximum, items, frozenset(classes)))


def condition(value_set: str, status: str | None = "active", ref: str = "Condition/c1") -> ConditionFinding:
    return ConditionFinding(ref, Coded(ICD10, "G40.909", value_set), value_set, status, date(2024, 5, 1))


def exposure(ingredient: str, classes: tuple[str, ...], ref: str = "MedicationStatement/x") -> Exposure:
    return Exposure(ref, ingredient, frozenset(classes), date(2025, 2, 1), date(2025, 2, 1))


@dataclass(frozen=True)
class FakeFacts:
    age: object = Observed(67, (Evidence("Patient/p1", "birthDate", "1959-03-02"),))
    diagnosis: object = field(default_factory=myeloma)
    serum: object = field(default_factory=lambda: measurement(1.2, "g/dL", date(2026, 11, 10)))
    urine: object = NOT_SHOWN
    light_chains: object = NOT_SHOWN
    progression: object = NOT_SHOWN
    assessment: object = None  # latest disease assessment; None: same as progression
    last_dose: object = NOT_SHOWN
    lines_plain: object = field(default_factory=lambda: lines(4))
    lines_consolidated: object = None  # None: same as lines_plain
    conditions: object = Observed(())
    exposures: object = Observed(())
    concurrent: object = Observed(())
    dose: object = Observed(CellDose(450.0), (Evidence("MedicationRequest/car-t-1", "doseQuantity", "450", "10*6"),))
    tocilizumab: object = Observed(TocilizumabRequest(800.0, 4))
    specialties: object = Observed((Coded(NUCC, "207RH0003X", "Hematology & Oncology"),))
    member_coverage: object = Observed(CoverageFinding("Coverage/cov1", "commercial"))

    def age_bounds(self, as_of):
        """``age`` holds whole years (an exact age) or ``AgeBounds`` (a partial birthDate)."""
        if isinstance(self.age, Observed) and isinstance(self.age.value, int):
            return Observed(AgeBounds(self.age.value, self.age.value), self.age.evidence)
        return self.age

    def myeloma_diagnosis(self, as_of, order=None):
        return self.diagnosis

    def serum_m_protein(self, as_of, within_days):
        return self.serum

    def urine_m_protein_24h(self, as_of, within_days):
        return self.urine

    def free_light_chains(self, as_of, within_days):
        return self.light_chains

    def progressive_disease(self, as_of):
        return self.progression

    def latest_disease_assessment(self, as_of):
        return self.progression if self.assessment is None else self.assessment

    def last_regimen_last_dose(self, as_of):
        return self.last_dose

    def lines_of_therapy(self, as_of, consolidation_in_line):
        if consolidation_in_line and self.lines_consolidated is not None:
            return self.lines_consolidated
        return self.lines_plain

    def conditions_in(self, value_sets, as_of):
        if isinstance(self.conditions, Unknown):
            return self.conditions
        return Observed(tuple(c for c in self.conditions.value if c.value_set in value_sets))

    def prior_exposures(self, value_sets, as_of):
        if isinstance(self.exposures, Unknown):
            return self.exposures
        return Observed(tuple(e for e in self.exposures.value if e.classes & set(value_sets)))

    def concurrent_requests(self, value_sets, order, draft_orders):
        if isinstance(self.concurrent, Unknown):
            return self.concurrent
        return Observed(tuple(e for e in self.concurrent.value if e.classes & set(value_sets)))

    def ordered_product(self, order):
        return OrderedProduct(f"{order['resourceType']}/{order['id']}", order["resourceType"], (), ())

    def cell_dose(self, order):
        return self.dose

    def tocilizumab_request(self, order):
        return self.tocilizumab

    def ordering_specialties(self, order):
        return self.specialties

    def coverage(self):
        return self.member_coverage
