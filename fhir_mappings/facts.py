"""Clinical facts: what policy checks read, each either observed (value + evidence) or unknown (reason).

This module is the contract between ``fhir_mappings`` (which builds facts from FHIR R4 resources) and
``policies`` (whose checks read them). It holds no HTTP and no policy words: the types describe clinical
findings, their evidence and how complete the underlying retrieval was.

Why three kinds of "not there":
- ``Observed`` -- the record shows the value; ``evidence`` cites the FHIR resources behind it.
- ``Unknown(retrieval_failed=False)`` -- the record was obtained but does not show the value
  (documentation missing, unit not convertible, ...).
- ``Unknown(retrieval_failed=True)`` -- the part of the record the fact needs could not be obtained
  (FHIR server failed, timed out, partial paging). The policy engine reports this as ``indeterminate``,
  never as missing documentation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class RetrievalState(str, enum.Enum):
    """How completely one resource type of the patient's record was obtained for this hook call."""

    COMPLETE = "complete"
    PARTIAL = "partial"  # paging cut by the page/byte cap or the deadline
    FAILED = "failed"  # the query failed (reason says how)
    NOT_NEEDED = "not-needed"  # nothing asked for it (e.g. no in-scope order)


@dataclass(frozen=True)
class RetrievalOutcome:
    """Outcome of obtaining one resource type; ``reason`` is a short typed code such as ``timeout``,
    ``http-401``, ``http-5xx``, ``not-json``, ``not-fhir``, ``page-cap``. Never contains patient data."""

    state: RetrievalState
    reason: str | None = None

    @property
    def usable_in_full(self) -> bool:
        return self.state is RetrievalState.COMPLETE


COMPLETE = RetrievalOutcome(RetrievalState.COMPLETE)


@dataclass(frozen=True)
class Evidence:
    """One FHIR element behind a fact. ``reference`` is ``Type/id`` exactly as the EHR sent it."""

    reference: str
    element: str
    value: str | None = None
    unit: str | None = None
    date: str | None = None  # ISO date or dateTime of the clinically relevant time, when there is one

    def __post_init__(self) -> None:
        # Record values are untyped JSON until checked. Evidence is formatted into card text and used as
        # a key while it is (issue 17: a coding "code" sent as a list crashed card building), so a JSON
        # object or array where FHIR has a primitive is not shown, as if the element were absent.
        for key in ("value", "unit", "date"):
            if isinstance(getattr(self, key), (dict, list)):
                object.__setattr__(self, key, None)

    def as_json(self) -> dict:
        out = {"reference": self.reference, "element": self.element}
        for key in ("value", "unit", "date"):
            val = getattr(self, key)
            if val is not None and val != "":
                out[key] = val
        return out


@dataclass(frozen=True)
class Observed(Generic[T]):
    value: T
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Unknown:
    reason: str
    retrieval_failed: bool = False
    evidence: tuple[Evidence, ...] = ()  # raw values that could not be used (e.g. a result with no unit)


Fact = Observed[T] | Unknown


# ---------------------------------------------------------------------------------------------------
# Value types carried by Observed facts. Dates are ``datetime.date``; quantities are canonical units.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateSpan:
    """A FHIR date/dateTime as the range of calendar days it may denote: ``1960`` is 1960-01-01 ..
    1960-12-31, ``2026-10-01T23:30:00-05:00`` is 2026-10-01 (the local day the EHR recorded; the
    offset is not converted, since the clinical day is the local one)."""

    earliest: date
    latest: date

    @property
    def exact(self) -> bool:
        return self.earliest == self.latest

    def isoformat(self) -> str:
        """``2026-09-15`` for one day, the ISO 8601 interval ``2026-09-01/2026-09-30`` for a span."""
        return self.latest.isoformat() if self.exact else f"{self.earliest.isoformat()}/{self.latest.isoformat()}"


@dataclass(frozen=True)
class AgeBounds:
    """The youngest and oldest age (whole years) a birthDate allows on a day: equal for a full date,
    a range for a partial one (``1960`` on 2026-11-24: 65 .. 66)."""

    minimum: int
    maximum: int


@dataclass(frozen=True)
class Coded:
    system: str | None
    code: str | None
    display: str | None = None


class DatedResult:
    """A result dated to a day (``effective``), or to a span of days when the record's date is partial
    (``effective_earliest`` .. ``effective``)."""

    effective: date
    effective_earliest: date | None

    @property
    def effective_span(self) -> DateSpan:
        return DateSpan(self.effective_earliest or self.effective, self.effective)


@dataclass(frozen=True)
class Measurement(DatedResult):
    """A lab value normalised to the canonical unit of its analyte (g/dL serum M-protein,
    mg/24h urine M-protein, mg/dL free light chains, 1 for ratios, % for plasma cells)."""

    value: float
    unit: str
    effective: date  # the latest day it may have been collected
    reference: str
    raw_value: float | None = None
    raw_unit: str | None = None
    comparator: str | None = None  # "<", "<=", ">", ">=" when the lab reported a bound, not a value
    # the other valid results of the analyte in the lookback window, newest first: a check weighs them
    # when they disagree with this one (see ``policies.checks.disease``)
    others_in_window: tuple[Measurement, ...] = ()
    effective_earliest: date | None = None  # the earliest day, when the date is partial; None when exact


@dataclass(frozen=True)
class FreeLightChains(DatedResult):
    """Serum FLC assay on one date. ``involved`` is ``kappa`` when the ratio is high, ``lambda`` when low,
    ``None`` when the ratio is normal. ``ratio_abnormal_basis`` says how abnormality was judged
    (``interpretation``, ``referenceRange`` or ``default 0.26-1.65``)."""

    effective: date
    ratio: float | None
    ratio_abnormal: bool | None
    ratio_abnormal_basis: str | None
    involved: str | None
    involved_mg_dl: float | None
    kappa_mg_dl: float | None
    lambda_mg_dl: float | None
    # a bound ("<", "<=", ">", ">=") instead of a value: the ratio as reported (or as computed from
    # bounded chains), the involved chain as reported
    ratio_comparator: str | None = None
    involved_comparator: str | None = None
    # the other assays of the lookback window, newest first (see ``Measurement.others_in_window``)
    others_in_window: tuple[FreeLightChains, ...] = ()
    references: tuple[str, ...] = ()  # the Observations of the assay, "Observation/id"
    effective_earliest: date | None = None  # the earliest day, when the date is partial; None when exact


@dataclass(frozen=True)
class ProgressionFinding:
    """Progressive disease per IMWG (policy Appendix D) or as documented disease status. ``progressive``
    is False only for a documented disease status that says the disease is not progressing (stable,
    improved), which ``latest_disease_assessment`` may return."""

    assessed: date  # the latest day it may have been assessed (a partial date is a span)
    basis: str  # human-readable, e.g. "serum M-protein 2.6 g/dL vs nadir 2.0 g/dL (+0.6, +30%)"
    marker: str  # serum-m-protein | urine-m-protein | dflc | bone-marrow-plasma-cells | disease-status
    confirmed: bool = False
    progressive: bool = True
    assessed_earliest: date | None = None  # the earliest day, when the date is partial; None when exact

    @property
    def assessed_span(self) -> DateSpan:
        return DateSpan(self.assessed_earliest or self.assessed, self.assessed)


@dataclass(frozen=True)
class ConditionFinding:
    """A Condition in a value set. ``code`` is the matching coding, or for an entry recognised from its
    words (``Condition.code.text``, a display without a code) system and code None with the text as
    display. ``assertion`` says what the entry asserts (``fhir_mappings.assertions``): ``present``,
    ``historical`` ("history of seizure"), or ``uncertain`` ("rule out CNS involvement", or a
    provisional/differential/unconfirmed verificationStatus)."""

    reference: str
    code: Coded
    value_set: str  # the value-set id that matched
    clinical_status: str | None
    onset: date | None
    recorded: date | None = None
    assertion: str = "present"


@dataclass(frozen=True)
class DiagnosisFinding:
    """Multiple myeloma diagnosis and relapsed/refractory status.

    ``relapsed_refractory`` is True with ``basis`` when the record shows relapse or refractoriness
    (C90.02; clinicalStatus relapse/recurrence; C90.00 with progression or prior anti-myeloma therapy),
    False when it shows only remission with nothing else, None when myeloma is present but its status is
    not shown. ``other_indications`` are non-myeloma conditions given as the order's reason."""

    myeloma: tuple[ConditionFinding, ...]
    relapsed_refractory: bool | None
    basis: str | None
    other_indications: tuple[ConditionFinding, ...] = ()


@dataclass(frozen=True)
class Exposure:
    """One anti-myeloma (or other tracked) drug exposure from MedicationStatement/Administration/Request
    or a Procedure (HSCT, CAR-T infusion). ``ingredient`` is a lower-case ingredient name."""

    reference: str
    ingredient: str
    classes: frozenset[str]  # value-set ids, e.g. {"imid"}, {"proteasome-inhibitor"}, {"car-t-products"}
    start: date | None
    end: date | None
    group: str | None = None  # explicit grouping key (shared basedOn/partOf CarePlan or request), if any


@dataclass(frozen=True)
class LineOfTherapy:
    number: int
    start: date | None
    end: date | None
    ingredients: tuple[str, ...]
    classes: frozenset[str]
    components: tuple[str, ...]  # e.g. ("induction", "autologous-hsct", "maintenance")
    references: tuple[str, ...]


@dataclass(frozen=True)
class LinesOfTherapy:
    """Prior lines as an interval: the record shows at least ``minimum`` and at most ``maximum``."""

    minimum: int
    maximum: int
    lines: tuple[LineOfTherapy, ...]
    classes_received: frozenset[str]


@dataclass(frozen=True)
class OrderedProduct:
    """What a draft order asks for: every coding found (any coding of medicationCodeableConcept,
    contained/referenced Medication, ServiceRequest.code) plus the text names seen."""

    reference: str  # "MedicationRequest/abc"
    resource_type: str
    codings: tuple[Coded, ...]
    names: tuple[str, ...]
    status: str | None = None
    requester: str | None = None  # reference to Practitioner/PractitionerRole


@dataclass(frozen=True)
class CellDose:
    """CAR-positive (viable) T cells in the order, in units of 10^6 cells; ``per_kg`` when the order
    states a weight-based dose."""

    millions_of_cells: float
    per_kg: bool = False


@dataclass(frozen=True)
class TocilizumabRequest:
    dose_mg_per_administration: float | None
    number_of_doses: int | None


@dataclass(frozen=True)
class CoverageFinding:
    reference: str  # "Coverage/abc"
    line_of_business: str | None  # commercial | marketplace | ichra | medicaid | None (cannot tell)
    payer: str | None = None


class FactSource(Protocol):
    """What policy checks may ask of a patient's record. Implemented by
    ``fhir_mappings.clinical_facts.ClinicalFacts``; tests may supply fakes. Every method is pure: the
    same record and arguments give the same answer, no clock, no I/O."""

    def age_bounds(self, as_of: date) -> Fact[AgeBounds]: ...

    def myeloma_diagnosis(self, as_of: date, order: dict | None = None) -> Fact[DiagnosisFinding]: ...
    # ``order``: the draft order, whose reasonCode/reasonReference give ``other_indications``

    def serum_m_protein(self, as_of: date, within_days: int) -> Fact[Measurement]: ...

    def urine_m_protein_24h(self, as_of: date, within_days: int) -> Fact[Measurement]: ...

    def free_light_chains(self, as_of: date, within_days: int) -> Fact[FreeLightChains]: ...

    def progressive_disease(self, as_of: date) -> Fact[ProgressionFinding]: ...

    def latest_disease_assessment(self, as_of: date) -> Fact[ProgressionFinding]: ...

    def last_regimen_last_dose(self, as_of: date) -> Fact[DateSpan]: ...
    # the days the last dose may have been: one day, or a span when the record's date is partial

    def lines_of_therapy(self, as_of: date, consolidation_in_line: bool) -> Fact[LinesOfTherapy]: ...

    def conditions_in(self, value_sets: tuple[str, ...], as_of: date) -> Fact[tuple[ConditionFinding, ...]]: ...

    def prior_exposures(self, value_sets: tuple[str, ...], as_of: date) -> Fact[tuple[Exposure, ...]]: ...

    def concurrent_requests(
        self, value_sets: tuple[str, ...], order: dict, draft_orders: tuple[dict, ...]
    ) -> Fact[tuple[Exposure, ...]]: ...

    def ordered_product(self, order: dict) -> OrderedProduct: ...

    def cell_dose(self, order: dict) -> Fact[CellDose]: ...

    def tocilizumab_request(self, order: dict) -> Fact[TocilizumabRequest]: ...

    def ordering_specialties(self, order: dict) -> Fact[tuple[Coded, ...]]: ...

    def coverage(self) -> Fact[CoverageFinding]: ...


@dataclass(frozen=True)
class RecordIssue:
    """Something in the received record that was skipped or ignored, reported without patient data
    (``reference`` and a short code such as ``malformed``, ``other-patient``, ``entered-in-error``)."""

    reference: str | None
    code: str
    detail: str = field(default="")
