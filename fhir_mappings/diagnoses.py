"""Conditions: the multiple myeloma diagnosis with its relapsed/refractory status, conditions in named
value sets (CNS involvement and pathologies, active or historical), and non-myeloma order indications.

Relapsed/refractory (ICD-10-CM has no "refractory" code, so it needs clinical evidence):
- C90.02 "multiple myeloma in relapse" (or a text-only diagnosis saying relapsed or refractory), or a
  myeloma Condition with clinicalStatus relapse/recurrence;
- progressive disease (IMWG, from the labs, or a documented disease status), whatever the diagnosis
  code says: a remission code (C90.01, clinicalStatus remission) records the status when it was
  coded, problem lists are seldom updated, and a later progression is relapse;
- C90.00 "not having achieved remission" (incl. failed remission), or any other myeloma Condition
  with clinicalStatus active (e.g. SNOMED 109989006), together with prior anti-myeloma therapy
  (``treated``): active disease after therapy is relapsed or refractory.
Only remission (C90.01, clinicalStatus remission, or text "in remission") and nothing of the above is
``False``, and only when the labs could be read in full (else unknown: they might show progression);
otherwise ``None`` (present but status not shown).

Text-only myeloma Conditions count when their text plainly names the concept (not negated, not hedged,
not smoldering). Conditions in other value sets (CNS pathology and involvement) are recognised from
their words too, with what the words assert (``fhir_mappings.assertions``: "rule out ..." is uncertain,
"no ..." is nothing, "history of ..." is history).

Dates: a Condition's onset (else recordedDate) is a span (``parsing.DateSpan``); the Condition is
left out only when the whole span is after ``as_of``. With no clinicalStatus, an abatement wholly on
or before ``as_of`` makes the Condition inactive; one that may be later leaves its status unknown.
"""

from __future__ import annotations

import re
from datetime import date

from fhir_mappings import assertions
from fhir_mappings.assertions import PRESENT, UNCERTAIN, Match
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
from fhir_mappings.parsing import DateSpan, on_or_before, parse_date
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.terminology import codings_of, concept_text, value_set

MYELOMA = "multiple-myeloma"
NOT_MYELOMA = "not-multiple-myeloma"
_SMOLDERING = re.compile(r"\bsmou?ldering\b")
RELAPSE_STATUSES = frozenset({"relapse", "recurrence"})
REMISSION_STATUSES = frozenset({"remission"})


def _first_code(concept) -> str | None:
    return next((c["code"] for c in codings_of(concept) if isinstance(c.get("code"), str)), None)


def _onset_span(condition: dict) -> DateSpan | None:
    for key in ("onsetDateTime", "onsetPeriod"):
        value = condition.get(key)
        span = parse_date(value.get("start") if isinstance(value, dict) else value)
        if span:
            return span
    return None


def _clinical_status(condition: dict, as_of: date | None) -> str | None:
    """``clinicalStatus``; when it is missing, ``inactive`` if the Condition abated by ``as_of`` (FHIR:
    an abatement means inactive, resolved or remission): an abatementString, or an abatement date
    whose whole span is on or before ``as_of``. A date that may be later leaves the status unknown."""
    status = _first_code(condition.get("clinicalStatus"))
    if status is not None or as_of is None:
        return status
    if isinstance(condition.get("abatementString"), str):
        return "inactive"
    period = condition.get("abatementPeriod")
    span = parse_date(condition.get("abatementDateTime")) or (
        parse_date(period.get("end")) if isinstance(period, dict) else None)  # abated by the period's end
    return "inactive" if span is not None and on_or_before(span, as_of) is True else None


def _finding(record: PatientRecord, condition: dict, value_set_id: str, coded: Coded,
             assertion: str = PRESENT, as_of: date | None = None) -> ConditionFinding:
    onset = _onset_span(condition)
    recorded = parse_date(condition.get("recordedDate"))
    return ConditionFinding(
        reference=record.reference_of(condition),
        code=coded,
        value_set=value_set_id,
        clinical_status=_clinical_status(condition, as_of),
        onset=onset.earliest if onset else None,
        recorded=recorded.earliest if recorded else None,
        assertion=assertion,
    )


def _evidence(f: ConditionFinding) -> Evidence:
    shown = f.code.code or f.code.display
    element = "Condition.code" if f.code.code else "Condition.code.text"
    status = f" ({f.clinical_status})" if f.clinical_status else ""
    when = f.onset or f.recorded
    return Evidence(f.reference, element, f"{shown}{status}", None, when.isoformat() if when else None)


def _known_by(condition: dict, as_of: date) -> bool:
    """Whether the Condition was on the record by ``as_of``, judged on its onset (else recordedDate)
    as a span: only a date wholly after ``as_of`` (an entry made later) leaves it out. A partial date
    reaching past ``as_of`` ("2026-11" on 2026-11-24) is kept: the record holds the entry, so a
    possible later day is no reason to ignore it, and for an exclusion ignoring it would be unsafe."""
    span = _onset_span(condition) or parse_date(condition.get("recordedDate"))
    return span is None or on_or_before(span, as_of) is not False


def _match(value_set_id: str, condition: dict) -> Match | None:
    """The Condition's match with what the entry asserts (``assertions``). A myeloma diagnosis must be
    asserted (present or history), never hedged, and a smoldering myeloma named in words is not one."""
    hit = assertions.match(value_set_id, condition.get("code"), _first_code(condition.get("verificationStatus")))
    if value_set_id != MYELOMA or hit is None:
        return hit
    return None if hit.assertion == UNCERTAIN or _smoldering(hit) else hit


def _smoldering(hit: Match) -> bool:
    """A smoldering myeloma named in words (no code of the value set names it)."""
    return hit.coded.code is None and bool(_SMOLDERING.search((hit.coded.display or "").lower()))


def _matching(record: PatientRecord, value_set_ids: tuple[str, ...], as_of: date) -> list[ConditionFinding]:
    """Conditions in any of the value sets, known by ``as_of``: each once, under the first value set
    it is asserted in, else the first it is hedged in ("Possible CNS involvement; epilepsy" is
    epilepsy, not merely a possible CNS involvement)."""
    found = []
    for condition in record.of_type("Condition"):
        hits = [(vs_id, hit) for vs_id in value_set_ids if (hit := _match(vs_id, condition)) is not None]
        if not hits or not _known_by(condition, as_of) or not record.well_formed(condition):
            continue
        vs_id, hit = next((h for h in hits if h[1].assertion != UNCERTAIN), hits[0])
        found.append(_finding(record, condition, vs_id, hit.coded, hit.assertion, as_of))
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
        if _other_indication(concept):
            out.append(ConditionFinding(order_ref, _first_coding(concept), NOT_MYELOMA, None, None))
    for ref in order.get("reasonReference") or ():
        condition = record.resolve(ref, context=order)
        if isinstance(condition, dict) and condition.get("resourceType") == "Condition":
            if _other_indication(condition.get("code")):
                out.append(_finding(record, condition, NOT_MYELOMA, _first_coding(condition.get("code"))))
    return tuple(out)


def _other_indication(concept) -> bool:
    """Whether an order's reason names a condition other than multiple myeloma: it names something
    (a code or words), and not myeloma (a denial of myeloma does not name it; smoldering myeloma is
    another indication); a hedge ("possible multiple myeloma") is neither myeloma nor another."""
    first = _first_coding(concept)
    if first.code is None and not first.display:
        return False
    hit = assertions.match(MYELOMA, concept)
    return hit is None or _smoldering(hit)


def _first_coding(concept) -> Coded:
    """The first coding with a code, else the concept's words (its text, or a code-less display)."""
    concept = concept if isinstance(concept, dict) else {}
    for coding in codings_of(concept):
        if coding.get("code"):
            return Coded(coding.get("system"), coding.get("code"), coding.get("display") or concept_text(concept))
    words = [concept.get("text")] + [c.get("display") for c in codings_of(concept)]
    return Coded(None, None, next((w for w in words if isinstance(w, str) and w.strip()), None))


def _in(value_set_id: str, finding: ConditionFinding) -> bool:
    """Whether the myeloma finding is coded in the status value set, or for a finding recognised from
    its words, says so (``assertions``: "Multiple myeloma, in relapse" yes, "... not in remission" is
    not in remission, a hedge is neither)."""
    if finding.code.code is not None:
        return value_set(value_set_id).contains(finding.code.system, finding.code.code)
    hit = assertions.match(value_set_id, {"text": finding.code.display})
    return hit is not None and hit.assertion != UNCERTAIN


def _shown(f: ConditionFinding) -> str:
    """The code of the finding, or its words in quotes."""
    return f.code.code or f"'{f.code.display}'"


def relapsed_refractory(
    myeloma: tuple[ConditionFinding, ...], progression: ProgressionFinding | None, treated: bool
) -> tuple[bool | None, str | None]:
    """(status, basis) per the module docstring."""
    for f in myeloma:
        if _in("myeloma-relapsed", f):
            said = f"{f.code.code} multiple myeloma in relapse" if f.code.code else f"'{f.code.display}'"
            return True, f"{said} ({f.reference})"
        if f.clinical_status in RELAPSE_STATUSES:
            return True, f"myeloma clinicalStatus {f.clinical_status} ({f.reference})"
    if treated:
        for f in myeloma:
            if _in("myeloma-not-in-remission", f):
                return True, f"{_shown(f)} not having achieved remission after anti-myeloma therapy ({f.reference})"
            if f.clinical_status == "active" and f.assertion == PRESENT and not _in("myeloma-in-remission", f):
                # An active myeloma (e.g. SNOMED 109989006) after anti-myeloma therapy is what C90.00
                # "not having achieved remission" codes: relapsed or refractory. Words placing it in
                # the past ("History of multiple myeloma") do not show active disease.
                return True, f"{_shown(f)} clinicalStatus active after anti-myeloma therapy ({f.reference})"
    if progression is not None:
        # Progression shown by the labs is relapse whatever the problem list says: a remission code
        # (C90.01) is the status when it was coded, and a later progression supersedes it.
        return True, f"progressive disease on {progression.assessed_span.isoformat()}: {progression.basis}"
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
    if status is False and isinstance(progression, Unknown) and progression.retrieval_failed:
        # "In remission" is contradicted by progression in the labs, which could not all be read.
        return Unknown(f"myeloma recorded in remission; {progression.reason}", True, evidence)
    return Observed(DiagnosisFinding(myeloma, status, basis, others), evidence)
