"""Realistic policy decisions and draft orders, built by hand, for the card and coverage-information tests.

Criterion ids, texts and documentation follow the policy files (CP.PHAR.481 Abecma, CP.PHAR.769
KITE-772); evidence cites resources as an EHR sends them. Each builder returns a fresh decision.
"""

from __future__ import annotations

from dataclasses import replace

from fhir_mappings.facts import Evidence
from policies.decision import (
    ApprovalTerms,
    CriterionResult,
    PolicyDecision,
    Referral,
    ReferralPolicy,
    Status,
    Verdict,
)

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN
AS_OF = "2026-11-24"

ABECMA_TERMS = ApprovalTerms(3, 1, 4, 800.0, True, ("Q2055",))
KITE_TERMS = ApprovalTerms(3, 1, 4, 800.0, True)

TEXT = {
    "I.A": "Multiple Myeloma (must meet all). Only for initial treatment dose; subsequent doses will not be covered.",
    "I.A.1": "Diagnosis of relapsed or refractory multiple myeloma",
    "I.A.2": "Prescribed by or in consultation with an oncologist or hematologist",
    "I.A.3": "Age >= 18 years",
    "I.A.4": "One of the following (a or b)",
    "I.A.4.a": "Member has measurable disease as evidenced by one of the following assessed within the last 30 days",
    "I.A.4.a.i": "Serum M-protein >= 0.5 g/dL",
    "I.A.4.b": "Member has progressive disease, as defined by the IMWG response criteria (see Appendix D)",
    "I.A.5": "Member has received >= 2 prior lines of therapy that include all of the following (a, b, and c)",
    "I.A.6": "Member does not have known central nervous system (CNS) involvement with myeloma",
    "I.A.7": "Member has not previously received treatment with anti-BCMA targeted therapy (e.g., Blenrep, Tecvayli)",
    "I.A.8": "Member has not previously received treatment with CAR T-cell immunotherapy",
    "I.A.9": "Not prescribed concurrently with other CAR T-cell immunotherapy (e.g., Breyanzi, Carvykti)",
    "I.A.10": "Dose does not exceed 510 x 10^6 CAR-positive T-cells",
    "II.A.1": "Continued therapy will not be authorized as the product is indicated to be dosed one time only.",
    "III.B": "Known CNS involvement with myeloma, or history or presence of clinically relevant CNS pathology",
    "I.A.approval.tocilizumab": "4 doses of tocilizumab (Actemra) if requested at up to 800 mg per dose",
}
DOCUMENTATION = {
    "I.A.4": "Serum or urine M-protein or serum free light chains within the last 30 days, or IMWG progressive "
             "disease assessed within 60 days following the last dose of the last anti-myeloma regimen",
    "I.A.5": "Treatment history showing at least 2 prior lines of therapy with their drugs and dates",
    "I.A.6": "Problem list and neurological history showing no CNS involvement with myeloma",
}


def criterion(cid: str, status: Status, reason: str, *evidence: Evidence, children: tuple[str, ...] = (),
              retrieval_failed: bool = False, text: str | None = None) -> CriterionResult:
    return CriterionResult(cid, text or TEXT[cid], status, reason, tuple(evidence), retrieval_failed,
                           DOCUMENTATION.get(cid), children)


AGE = criterion("I.A.3", MET, "Age 67 on 2026-11-24", Evidence("Patient/pat-1", "birthDate", "1959-03-02"))
DIAGNOSIS = criterion("I.A.1", MET, "Relapsed multiple myeloma on the problem list",
                      Evidence("Condition/cond-mm", "code", "C90.02 Multiple myeloma, in relapse", date="2024-05-10"))
PRESCRIBER = criterion("I.A.2", MET, "Ordered by a hematology/oncology physician",
                       Evidence("PractitionerRole/pr-7", "specialty", "207RH0003X Hematology & Oncology"))
M_PROTEIN = Evidence("Observation/spep-11", "valueQuantity", "1.2", "g/dL", "2026-11-10")
LINES = criterion("I.A.5", MET, "3 prior lines of therapy (minimum 3)",
                  Evidence("MedicationStatement/ms-len", "medicationCodeableConcept", "lenalidomide", date="2023-01-04"))
NO_CNS = criterion("I.A.6", MET, "No CNS involvement or CNS pathology on the complete problem list")
NO_BCMA = criterion("I.A.7", MET, "No anti-BCMA therapy in the complete treatment history")
NO_CART = criterion("I.A.8", MET, "No prior CAR T-cell therapy in the complete treatment history")
NOT_CONCURRENT = criterion("I.A.9", MET, "No other CAR T-cell order")
DOSE = criterion("I.A.10", MET, "Ordered dose 450 x 10^6 CAR-positive T cells",
                 Evidence("MedicationRequest/abecma-1", "dosageInstruction[0].doseAndRate[0].doseQuantity", "450", "10*6"))
FIRST_INFUSION = criterion("II.A.1", MET, "No prior infusion of the product")
NO_EXCLUSION = criterion("III.B", MET, "No CNS pathology on the complete problem list")
TOP = ("I.A.1", "I.A.2", "I.A.3", "I.A.4", "I.A.5", "I.A.6", "I.A.7", "I.A.8", "I.A.9", "I.A.10")


def _decision(product: str, policy: str, title: str, order: str, verdict: Verdict, criteria, terms,
              **changes) -> PolicyDecision:
    missing = tuple(f"{c.id}: {c.documentation}" for c in criteria
                    if c.status is UNKNOWN and not c.retrieval_failed and c.documentation)
    decision = PolicyDecision(order, "car-t", product, policy, "2026-05", title, verdict, tuple(criteria),
                              missing, terms, coverage="Coverage/cov-1", line_of_business="commercial")
    return replace(decision, **changes)


def abecma(verdict: Verdict, criteria, **changes) -> PolicyDecision:
    return _decision("Abecma (idecabtagene vicleucel)", "CP.PHAR.481", "Idecabtagene Vicleucel (Abecma)",
                     "MedicationRequest/abecma-1", verdict, criteria, ABECMA_TERMS, **changes)


def kite(verdict: Verdict, criteria, **changes) -> PolicyDecision:
    return _decision("KITE-772 (anitocabtagene autoleucel)", "CP.PHAR.769", "Anitocabtagene Autoleucel",
                     "MedicationRequest/kite-1", verdict, criteria, KITE_TERMS, **changes)


def abecma_meets() -> PolicyDecision:
    measurable = [
        criterion("I.A.4", MET, "Measurable disease within 30 days", children=("I.A.4.a", "I.A.4.b")),
        criterion("I.A.4.a", MET, "Serum M-protein 1.2 g/dL on 2026-11-10", M_PROTEIN, children=("I.A.4.a.i",)),
        criterion("I.A.4.a.i", MET, "Serum M-protein 1.2 g/dL on 2026-11-10 (>= 0.5)", M_PROTEIN),
        criterion("I.A.4.b", UNKNOWN, "No progression assessment after the last regimen"),
    ]
    return abecma(Verdict.MEETS_POLICY, [
        criterion("I.A", MET, "All initial criteria met", children=TOP),
        DIAGNOSIS, PRESCRIBER, AGE, *measurable, LINES, NO_CNS, NO_BCMA, NO_CART, NOT_CONCURRENT, DOSE,
        FIRST_INFUSION, NO_EXCLUSION,
    ])


CONCURRENT = Evidence("MedicationRequest/carvykti-2", "medicationCodeableConcept", "ciltacabtagene autoleucel",
                      date="2026-11-20")
LOW_M_PROTEIN = Evidence("Observation/spep-12", "valueQuantity", "0.6", "g/dL", "2026-11-12")


def kite_does_not_meet() -> PolicyDecision:
    """Measurable disease below the 769 threshold (1.0 g/dL) and a concurrent CAR-T order; CNS unknown."""
    return kite(Verdict.DOES_NOT_MEET, [
        criterion("I.A", NOT_MET, "2 criteria not met", children=TOP),
        DIAGNOSIS, PRESCRIBER, AGE,
        criterion("I.A.4", NOT_MET, "Neither measurable disease nor progression", children=("I.A.4.a", "I.A.4.b")),
        criterion("I.A.4.a", NOT_MET, "Serum M-protein 0.6 g/dL on 2026-11-12 is below 1.0 g/dL", LOW_M_PROTEIN,
                  children=("I.A.4.a.i",)),
        criterion("I.A.4.a.i", NOT_MET, "Serum M-protein 0.6 g/dL < 1.0 g/dL", LOW_M_PROTEIN,
                  text="Serum M-protein >= 1.0 g/dL"),
        criterion("I.A.4.b", NOT_MET, "Disease status 'stable disease' on 2026-11-12",
                  Evidence("Observation/status-3", "valueCodeableConcept", "Stable disease", date="2026-11-12")),
        LINES,
        criterion("I.A.6", UNKNOWN, "Problem list not shown in the record"),
        NO_BCMA, NO_CART,
        criterion("I.A.9", NOT_MET, "Another CAR T-cell order is active", CONCURRENT),
        DOSE, FIRST_INFUSION, NO_EXCLUSION,
    ])


REFERRALS = (
    ReferralPolicy("commercial", "off-label", "CP.CPA.09"),
    ReferralPolicy("marketplace", "off-label", "HIM.PA.154"),
    ReferralPolicy("medicaid", "off-label", "CP.PMN.53"),
)


def abecma_other_diagnosis(line_of_business: str | None = "medicaid") -> PolicyDecision:
    """Diffuse large B-cell lymphoma, not myeloma: I.A.1 not met, section I.B referral."""
    return abecma(Verdict.DOES_NOT_MEET, [
        criterion("I.A", NOT_MET, "Diagnosis criterion not met", children=TOP),
        criterion("I.A.1", NOT_MET, "No multiple myeloma diagnosis; the order's indication is lymphoma",
                  Evidence("Condition/cond-dlbcl", "code", "C83.30 Diffuse large B-cell lymphoma", date="2026-08-02")),
        PRESCRIBER, AGE, FIRST_INFUSION,
    ], referral=Referral("The requested use is not multiple myeloma: refer to the off-label use policy", REFERRALS),
        line_of_business=line_of_business)


def abecma_incomplete() -> PolicyDecision:
    """No recent M-protein/FLC or progression, and lines of therapy not countable from the record."""
    return abecma(Verdict.DOCUMENTATION_INCOMPLETE, [
        criterion("I.A", UNKNOWN, "2 criteria not shown", children=TOP),
        DIAGNOSIS, PRESCRIBER, AGE,
        criterion("I.A.4", UNKNOWN, "No serum or urine M-protein or FLC in the 30 days before 2026-11-24",
                  children=("I.A.4.a", "I.A.4.b")),
        criterion("I.A.4.a", UNKNOWN, "No result in the 30 days before 2026-11-24", children=("I.A.4.a.i",)),
        criterion("I.A.4.a.i", UNKNOWN, "No serum M-protein result in the 30 days before 2026-11-24"),
        criterion("I.A.4.b", UNKNOWN, "No progression assessment after the last regimen"),
        criterion("I.A.5", UNKNOWN, "Between 1 and 3 prior lines of therapy (regimen grouping unclear)"),
        NO_CNS, NO_BCMA, NO_CART, NOT_CONCURRENT, DOSE, FIRST_INFUSION, NO_EXCLUSION,
    ])


def kite_indeterminate() -> PolicyDecision:
    """The Observation and Condition searches failed; the rest of the record meets the policy."""
    return kite(Verdict.INDETERMINATE, [
        criterion("I.A", UNKNOWN, "Not assessed in full", children=TOP),
        PRESCRIBER, AGE,
        criterion("I.A.1", UNKNOWN, "Condition search failed (http-5xx)", retrieval_failed=True),
        criterion("I.A.4", UNKNOWN, "Not assessed", children=("I.A.4.a", "I.A.4.b")),
        criterion("I.A.4.a", UNKNOWN, "Observation search failed (timeout)", retrieval_failed=True),
        criterion("I.A.4.b", UNKNOWN, "Observation search failed (timeout)", retrieval_failed=True),
        LINES, NO_BCMA, NO_CART, NOT_CONCURRENT, DOSE, FIRST_INFUSION,
        criterion("I.A.6", UNKNOWN, "Condition search failed (http-5xx)", retrieval_failed=True),
        criterion("III.B", UNKNOWN, "Condition search failed (http-5xx)", retrieval_failed=True),
    ])


def tocilizumab(status: Status, value: str, count: str) -> PolicyDecision:
    verdict = {MET: Verdict.MEETS_POLICY, NOT_MET: Verdict.DOES_NOT_MEET}[status]
    reason = f"{count} doses at {value} mg per dose (allowance: 4 doses at up to 800 mg)"
    return replace(abecma(verdict, [criterion(
        "I.A.approval.tocilizumab", status, reason,
        Evidence("MedicationRequest/toci-1", "dosageInstruction[0].doseAndRate[0].doseQuantity", value, "mg"),
        Evidence("MedicationRequest/toci-1", "dosageInstruction[0].timing.repeat.count", count),
    )]), order="MedicationRequest/toci-1", order_kind="tocilizumab", product="Tocilizumab (Actemra)")


def medication_request(order_id: str, codings: list[dict], text: str) -> dict:
    """A draft MedicationRequest as Epic sends it in draftOrders, with an EHR extension of its own."""
    return {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "meta": {"lastUpdated": "2026-11-24T09:12:00Z"},
        "extension": [{"url": "http://open.epic.com/FHIR/StructureDefinition/extension/order-class",
                       "valueCoding": {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.10.798268.30", "code": "1",
                                       "display": "Normal"}}],
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": codings, "text": text} if codings else {"text": text},
        "subject": {"reference": "Patient/pat-1"},
        "requester": {"reference": "PractitionerRole/pr-7"},
        "authoredOn": "2026-11-24",
        "dosageInstruction": [{"text": "once", "timing": {"repeat": {"count": 1}}, "doseAndRate": [
            {"doseQuantity": {"value": 450, "unit": "10^6 CAR+ T cells", "system": "http://unitsofmeasure.org",
                              "code": "10*6{CAR+T cells}"}}]}],
    }


def draft_orders() -> list[dict]:
    return [
        medication_request("abecma-1", [
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "2536435", "display": "Abecma"},
            {"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "Q2055"},
        ], "Abecma 450 million cells IV suspension"),
        medication_request("kite-1", [], "anitocabtagene autoleucel (KITE-772)"),
        medication_request("toci-1", [
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "612865", "display": "tocilizumab"},
        ], "tocilizumab 800 mg IV"),
    ]
