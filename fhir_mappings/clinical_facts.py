"""``ClinicalFacts``: the ``facts.FactSource`` the policy engine reads, over one ``PatientRecord``.

It only delegates: record-and-labs facts to ``demographics``, ``labs``, ``progression``, ``diagnoses``
and ``coverage``; therapy-and-orders facts to ``therapy``, ``lines_of_therapy`` and ``orders``. Every
method is pure (same record and arguments, same answer); ``as_of`` is always a parameter.

EHR data arrives as raw JSON and is validated only where a fact reads it, so an element of the wrong JSON
type (``"coding": true``) can still reach a fact module. Each fact is therefore read through
``_tolerant``: such a fault makes that one fact unknown, with a reason that says the record could not be
read, instead of failing the whole hook. Unknown is never turned into met, so this fails safe.
"""

from __future__ import annotations

import functools
import logging
from datetime import date

from fhir_mappings import coverage as coverage_module
from fhir_mappings import demographics, diagnoses, labs, lines_of_therapy, orders, progression, therapy
from fhir_mappings.facts import (
    AgeBounds,
    CellDose,
    Coded,
    ConditionFinding,
    CoverageFinding,
    DateSpan,
    DiagnosisFinding,
    Exposure,
    Fact,
    FreeLightChains,
    LinesOfTherapy,
    Measurement,
    Observed,
    OrderedProduct,
    ProgressionFinding,
    TocilizumabRequest,
    Unknown,
)
from fhir_mappings.patient_record import PatientRecord

log = logging.getLogger(__name__)
MALFORMED = "part of the record behind this fact is malformed FHIR and could not be read"


def _key(value):
    """A hashable stand-in for a fact argument: resources (dicts) by identity, sequences item by item."""
    if isinstance(value, dict):
        return id(value)
    if isinstance(value, (tuple, list)):
        return tuple(_key(v) for v in value)
    return value


def _tolerant(fact_method):
    """Read a fact once per ``ClinicalFacts`` (the engine asks for the same fact from several criteria;
    the instance lives for one hook, so nothing is kept across hooks), and fail safe to unknown."""

    @functools.wraps(fact_method)
    def read(self, *args):
        key = (fact_method.__name__, _key(args))
        if key not in self._read:
            try:
                self._read[key] = fact_method(self, *args)
            except (TypeError, AttributeError, ValueError, KeyError, IndexError) as exc:
                log.warning("malformed record data", extra={"fact": fact_method.__name__, "reason": type(exc).__name__})
                self._read[key] = Unknown(MALFORMED)
        return self._read[key]

    return read


class ClinicalFacts:
    def __init__(self, record: PatientRecord, line_of_business_table: coverage_module.LineOfBusinessTable | None = None):
        self.record = record
        self.line_of_business_table = line_of_business_table
        self._read: dict = {}  # facts already read for this hook (see _tolerant)

    # ------------------------------------------------------------------ record and labs

    @_tolerant
    def age_bounds(self, as_of: date) -> Fact[AgeBounds]:
        return demographics.age_bounds(self.record, as_of)

    @_tolerant
    def myeloma_diagnosis(self, as_of: date, order: dict | None = None) -> Fact[DiagnosisFinding]:
        exposures = therapy.exposures(self.record, as_of)
        treated = isinstance(exposures, Observed) and bool(exposures.value)
        return diagnoses.myeloma_diagnosis(self.record, as_of, self.progressive_disease(as_of), treated, order)

    @_tolerant
    def serum_m_protein(self, as_of: date, within_days: int) -> Fact[Measurement]:
        return labs.serum_m_protein(self.record, as_of, within_days)

    @_tolerant
    def urine_m_protein_24h(self, as_of: date, within_days: int) -> Fact[Measurement]:
        return labs.urine_m_protein_24h(self.record, as_of, within_days)

    @_tolerant
    def free_light_chains(self, as_of: date, within_days: int) -> Fact[FreeLightChains]:
        return labs.free_light_chains(self.record, as_of, within_days)

    @_tolerant
    def progressive_disease(self, as_of: date) -> Fact[ProgressionFinding]:
        return progression.progressive_disease(self.record, as_of)

    @_tolerant
    def latest_disease_assessment(self, as_of: date) -> Fact[ProgressionFinding]:
        return progression.latest_disease_assessment(self.record, as_of)

    @_tolerant
    def conditions_in(self, value_sets: tuple[str, ...], as_of: date) -> Fact[tuple[ConditionFinding, ...]]:
        return diagnoses.conditions_in(self.record, tuple(value_sets), as_of)

    @_tolerant
    def coverage(self) -> Fact[CoverageFinding]:
        return coverage_module.coverage(self.record, self.line_of_business_table)

    # ------------------------------------------------------------------ therapy and orders

    @_tolerant
    def last_regimen_last_dose(self, as_of: date) -> Fact[DateSpan]:
        return lines_of_therapy.last_regimen_last_dose(self.record, as_of)

    @_tolerant
    def lines_of_therapy(self, as_of: date, consolidation_in_line: bool) -> Fact[LinesOfTherapy]:
        return lines_of_therapy.lines_of_therapy(self.record, as_of, consolidation_in_line)

    @_tolerant
    def prior_exposures(self, value_sets: tuple[str, ...], as_of: date) -> Fact[tuple[Exposure, ...]]:
        return therapy.prior_exposures(self.record, value_sets, as_of)

    @_tolerant
    def concurrent_requests(
        self, value_sets: tuple[str, ...], order: dict, draft_orders: tuple[dict, ...]
    ) -> Fact[tuple[Exposure, ...]]:
        return therapy.concurrent_requests(self.record, value_sets, order, draft_orders)

    def ordered_product(self, order: dict) -> OrderedProduct:
        return orders.ordered_product(order, resolve=lambda ref: self.record.resolve(ref, context=order))

    @_tolerant
    def cell_dose(self, order: dict) -> Fact[CellDose]:
        return orders.cell_dose(self.record, order)

    @_tolerant
    def tocilizumab_request(self, order: dict) -> Fact[TocilizumabRequest]:
        return orders.tocilizumab_request(self.record, order)

    @_tolerant
    def ordering_specialties(self, order: dict) -> Fact[tuple[Coded, ...]]:
        return orders.ordering_specialties(self.record, order)
