"""Conditions: the multiple myeloma diagnosis with its relapsed/refractory status, conditions in named
value sets (CNS involvement and pathologies, active or historical), and non-myeloma order indications.

Relapsed/refractory (ICD-10-CM has no "refractory" code, so it needs clinical evidence):
- C90.02 "multiple myeloma in relapse", or a myeloma Condition with clinicalStatus relapse/recurrence;
- C90.00 "not having achieved remission" (incl. failed remission), or any other myeloma Condition
  with clinicalStatus active (e.g. SNOMED 109989006), together with prior anti-myeloma therapy
  (``treated``): active disease after therapy is relapsed or refractory;
- any myeloma diagnosis (other than one coded only as in remission) with progressive disease.
Only remission (C90.01 or clinicalStatus remission) and nothing of the above is ``False``; otherwise
``None`` (present but status not shown).

Text-only Conditions count when their text plainly names the concept (not negated, not smoldering).
"""

from __future__ import annotations

from datetime import date

from fhir_mappings.facts import (
    Coded,
    ConditionFinding,
    DiagnosisFinding,
    Evidence,
    Fact,
    Observed,
    ProgressionFinding,
    Unknown,
)
from fhir_mappings.parsing import parse_date
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.terminology import affirmative_match, codings_of, concept_text, value_set

MYELOMA = "multiple-myeloma"
NOT_MYELOMA = "not-multiple-myeloma"
RELAPSE_STATUSES = frozenset({"relapse", "recurrence"})
REMISSION_STATUSES = frozenset({"remission"})


def _clinical_status(condition: dict) -> str | None:
    concept = condition.get("clinicalStatus")
    for coding in codings_of(concept):
        if isinstance(coding.get("code"), str):
            return coding["code"]
    return None


def _onset(condition: dict) -> date | None:
    for key in ("onsetDateTime", "onsetPeriod"):
        value = condition.get(key)
        span = parse_date(value.get("start") if isinstance(value, dict) else value)
        if span:
            return span.earliest
    return None


def _finding(record: PatientRecord, condition: dict, value_set_id: str, coded: Coded) -> ConditionFinding:
    recorded = parse_date(condition.get("recordedDate"))
    return ConditionFinding(
        reference=record.reference_of(condition),
        code=coded,
        value_set=value_set_id,
        clinical_status=_clinical_status(condition),
        onset=_onset(condition),
        recorded=recorded.earliest if recorded else None,
    )


def _evidence(f: ConditionFinding) -> Evidence:
    shown = f.code.code or f.code.display
    status = f" ({f.clinical_status})" if f.clinical_status else ""
    when = f.onset or f.recorded
    return Evidence(f.reference, "Condition.code", f"{shown}{status}", None, when.isoformat() if when else None)


def _matching(record: PatientRecord, value_set_ids: tuple[str, ...], as_of: date) -> list[ConditionFinding]:
    """Conditions in any of the value sets, known on or before ``as_of`` (the first set matched wins)."""
    found = []
    for condition in record.of_type("Condition"):
        for vs_id in value_set_ids:
            coded = affirmative_match(vs_id, condition.get("code"))
            if coded is None:
                continue
            finding = _finding(record, condition, vs_id, coded)
            start = finding.onset or finding.recorded
            if (start is None or start <= as_of) and record.well_formed(condition):
                found.append(finding)
            break
    return found


def conditions_in(record: PatientRecord, value_set_ids: tuple[str, ...], as_of: date) -> Fact[tuple[ConditionFinding, ...]]:
    """Every Condition (any clinical status: active or historical) in the named value sets. Found
    conditions stand even from a partial retrieval; none found then is unknown (retrieval)."""
    for vs_id in value_set_ids:
        value_set(vs_id)  # an unknown value-set id is a programming error: fail loudly
    found = tuple(_matching(record, tuple(value_set_ids), as_of))
    outcome = record.retrieval("Condition")
    if not found and not outcome.usable_in_full:
        return Unknown(f"Conditions not fully retrieved ({outcome.reason or outcome.state.value})", True)
    return Observed(found, tuple(_evidence(f) for f in found))


def order_indications(record: PatientRecord, order: dict | None) -> tuple[ConditionFinding, ...]:
    """Non-myeloma conditions the order gives as its reason (reasonCode, or reasonReference to a
    Condition in the record or contained in the order)."""
    if not isinstance(order, dict):
        return ()
    kind = order.get("resourceType", "MedicationRequest")
    order_ref = f"{kind}/{order['id']}" if isinstance(order.get("id"), str) else kind
    out = []
    for concept in order.get("reasonCode") or ():
        if isinstance(concept, dict) and affirmative_match(MYELOMA, concept) is None:
            out.append(ConditionFinding(order_ref, _first_coding(concept), NOT_MYELOMA, None, None))
    for ref in order.get("reasonReference") or ():
        condition = record.resolve(ref, context=order)
        if isinstance(condition, dict) and condition.get("resourceType") == "Condition":
            if affirmative_match(MYELOMA, condition.get("code")) is None:
                out.append(_finding(record, condition, NOT_MYELOMA, _first_coding(condition.get("code"))))
    return tuple(out)


def _first_coding(concept) -> Coded:
    for coding in codings_of(concept):
        if coding.get("code"):
            return Coded(coding.get("system"), coding.get("code"), coding.get("display") or concept_text(concept))
    return Coded(None, None, concept_text(concept))


def _in(value_set_id: str, finding: ConditionFinding) -> bool:
    return value_set(value_set_id).contains(finding.code.system, finding.code.code)


def relapsed_refractory(
    myeloma: tuple[ConditionFinding, ...], progression: ProgressionFinding | None, treated: bool
) -> tuple[bool | None, str | None]:
    """(status, basis) per the module docstring."""
    for f in myeloma:
        if _in("myeloma-relapsed", f):
            return True, f"{f.code.code} multiple myeloma in relapse ({f.reference})"
        if f.clinical_status in RELAPSE_STATUSES:
            return True, f"myeloma clinicalStatus {f.clinical_status} ({f.reference})"
    if treated:
        for f in myeloma:
            if _in("myeloma-not-in-remission", f):
                return True, f"{f.code.code} not having achieved remission after anti-myeloma therapy ({f.reference})"
            if f.clinical_status == "active" and not _in("myeloma-in-remission", f):
                # An active myeloma (e.g. SNOMED 109989006) after anti-myeloma therapy is what C90.00
                # "not having achieved remission" codes: relapsed or refractory.
                name = f.code.code or f.code.display
                return True, f"{name} clinicalStatus active after anti-myeloma therapy ({f.reference})"
    if progression is not None:
        for f in myeloma:
            if not _in("myeloma-in-remission", f):
                return True, f"progressive disease on {progression.assessed.isoformat()}: {progression.basis}"
    if myeloma and all(_in("myeloma-in-remission", f) or f.clinical_status in REMISSION_STATUSES for f in myeloma):
        return False, "multiple myeloma recorded only as in remission"
    return None, None


def myeloma_diagnosis(
    record: PatientRecord,
    as_of: date,
    progression: Fact[ProgressionFinding],
    treated: bool,
    order: dict | None = None,
) -> Fact[DiagnosisFinding]:
    """Myeloma Conditions with their relapsed/refractory status and the order's other indications.
    ``progression`` and ``treated`` (prior anti-myeloma therapy in the record) come from the
    progression and therapy modules."""
    myeloma = tuple(_matching(record, (MYELOMA,), as_of))
    others = order_indications(record, order)
    outcome = record.retrieval("Condition")
    evidence = tuple(_evidence(f) for f in myeloma + others)
    if not myeloma:
        if not outcome.usable_in_full:
            return Unknown(f"Conditions not fully retrieved ({outcome.reason or outcome.state.value})", True, evidence)
        if others:
            return Observed(DiagnosisFinding((), None, None, others), evidence)
        return Unknown("no multiple myeloma Condition in the record", evidence=evidence)
    pd = progression.value if isinstance(progression, Observed) else None
    status, basis = relapsed_refractory(myeloma, pd, treated)
    if pd is not None and status and basis and basis.startswith("progressive"):
        evidence += progression.evidence
    if status is not True and not outcome.usable_in_full:
        return Unknown(f"Conditions not fully retrieved ({outcome.reason or outcome.state.value})", True, evidence)
    return Observed(DiagnosisFinding(myeloma, status, basis, others), evidence)
