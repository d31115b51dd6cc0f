"""Property tests of the three-valued logic and of the engine on arbitrary fact sets."""

from __future__ import annotations

import itertools
from dataclasses import fields, replace
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_fakes import ABECMA_ORDER, AS_OF, FakeFacts, condition, exposure, flc, lines, measurement

from fhir_mappings.facts import (
    CellDose,
    Coded,
    CoverageFinding,
    DateSpan,
    DiagnosisFinding,
    Observed,
    ProgressionFinding,
    TocilizumabRequest,
    Unknown,
)
from policies.decision import Status, Verdict
from policies.engine import evaluate, evaluate_tocilizumab
from policies.loader import shipped_policies
from policies.logic import all_of, any_of, n_of, negate
from tests.hypothesis_budget import examples

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN
statuses = st.lists(st.sampled_from(list(Status)), max_size=6)
POLICIES = shipped_policies()


def completions(values):
    """Every two-valued world consistent with ``values`` (each unknown replaced by met or not-met)."""
    options = [(MET, NOT_MET) if v is UNKNOWN else (v,) for v in values]
    return itertools.product(*options)


@given(statuses)
def test_unknown_never_becomes_met(values):
    """Kleene is sound: a decided result holds in every world the unknowns could turn out to be."""
    for combine in (all_of, any_of, lambda v: n_of(2, v)):
        decided = combine(values)
        if decided is not UNKNOWN:
            assert all(combine(world) is decided for world in completions(values))


@given(statuses)
def test_de_morgan(values):
    assert negate(all_of(values)) is any_of(negate(v) for v in values)
    assert negate(any_of(values)) is all_of(negate(v) for v in values)


@given(statuses, st.integers(min_value=0, max_value=6))
def test_all_with_a_not_met_child_is_not_met(values, position):
    values = list(values)
    values.insert(min(position, len(values)), NOT_MET)
    assert all_of(values) is NOT_MET


def unknown():
    return st.builds(Unknown, st.sampled_from(["not shown", "timeout"]), st.booleans())


def observed(values):
    return st.one_of(unknown(), values.map(Observed))


dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2027, 6, 1))
# a day, or the span of a partial date (a month, a year)
spans = st.builds(lambda day, width: DateSpan(day, day + timedelta(days=width)), dates, st.sampled_from([0, 29, 364]))
numbers = st.floats(min_value=0, max_value=1e6, allow_nan=False)
value_sets = st.sampled_from(["epilepsy", "seizure", "cns-malignancy-involvement", "meningeal-involvement",
                              "cerebrovascular-ischemia", "stroke"])
classes = st.sampled_from(["anti-bcma", "car-t-products", "idecabtagene-vicleucel", "anitocabtagene-autoleucel", "imid"])
clinical = st.sampled_from([None, "active", "inactive", "resolved", "relapse"])

FACT_STRATEGIES = {
    "age": observed(st.integers(min_value=0, max_value=120)),
    "diagnosis": observed(st.builds(DiagnosisFinding, st.tuples() | st.tuples(st.just(condition("multiple-myeloma"))),
                                    st.sampled_from([True, False, None]), st.none() | st.just("C90.02"),
                                    st.tuples() | st.tuples(st.just(condition("other"))))),
    "serum": st.one_of(unknown(), st.builds(measurement, numbers, st.just("g/dL"), dates)),
    "urine": st.one_of(unknown(), st.builds(measurement, numbers, st.just("mg/24 h"), dates)),
    "light_chains": st.one_of(unknown(), st.builds(flc, st.none() | numbers, st.sampled_from([True, False, None]), dates)),
    "progression": observed(st.builds(lambda span: ProgressionFinding(span.latest, "basis", "serum-m-protein",
                                                                      assessed_earliest=span.earliest), spans)),
    "assessment": observed(st.builds(ProgressionFinding, dates, st.just("basis"), st.just("disease-status"),
                                     progressive=st.booleans())),
    "last_dose": observed(spans),
    "lines_plain": st.one_of(unknown(), st.builds(lambda lo, extra: lines(lo, lo + extra),
                                                  st.integers(0, 6), st.integers(0, 3))),
    "conditions": observed(st.lists(st.builds(condition, value_sets, clinical), max_size=3).map(tuple)),
    "exposures": observed(st.lists(st.builds(lambda c: exposure("drug", (c,)), classes), max_size=3).map(tuple)),
    "concurrent": observed(st.lists(st.builds(lambda c: exposure("drug", (c,), "MedicationRequest/o"), classes),
                                    max_size=2).map(tuple)),
    "dose": observed(st.builds(CellDose, numbers, st.booleans())),
    "tocilizumab": observed(st.builds(TocilizumabRequest, st.none() | numbers, st.none() | st.integers(-1, 10))),
    "specialties": observed(st.lists(st.builds(Coded, st.sampled_from(["http://nucc.org/provider-taxonomy", None]),
                                               st.sampled_from(["207RH0003X", "207Q00000X", None])), max_size=2)
                            .map(tuple)),
    "member_coverage": observed(st.builds(CoverageFinding, st.just("Coverage/c"),
                                          st.sampled_from(["commercial", "ichra", "medicaid", None]))),
}
fact_sets = st.fixed_dictionaries({}, optional=FACT_STRATEGIES).map(lambda changes: replace(FakeFacts(), **changes))
as_of_dates = st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 1, 1))


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(fact_sets, as_of_dates, st.sampled_from(POLICIES))
def test_evaluation_never_raises_and_is_consistent(facts, as_of, policy):
    decision = evaluate(policy, facts, ABECMA_ORDER, as_of)
    by_status = {s: decision.with_status(s) for s in Status}
    if decision.verdict is Verdict.MEETS_POLICY:
        assert not decision.missing_documentation and decision.referral is None
    if decision.verdict is Verdict.DOES_NOT_MEET:
        assert by_status[NOT_MET]
    else:
        assert not {"I.A", "II.A.1", "III.A", "III.B"} & {c.id for c in by_status[NOT_MET]}
    evaluate_tocilizumab(policy, facts, ABECMA_ORDER, as_of)


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(fact_sets, st.sampled_from(sorted(FACT_STRATEGIES)), st.booleans(), st.sampled_from(POLICIES))
def test_hiding_a_fact_never_turns_a_decision_into_meets(facts, name, failed, policy):
    """Replacing any fact with Unknown (missing or failed retrieval) can only lose a 'meets-policy'."""
    hidden = replace(facts, **{name: Unknown("hidden", failed)})
    before = evaluate(policy, facts, ABECMA_ORDER, AS_OF).verdict
    after = evaluate(policy, hidden, ABECMA_ORDER, AS_OF).verdict
    if after is Verdict.MEETS_POLICY:
        assert before is Verdict.MEETS_POLICY
    if failed and after is Verdict.DOCUMENTATION_INCOMPLETE:
        assert before is not Verdict.MEETS_POLICY, "a failed retrieval behind a criterion must not read as missing documentation"


def test_fact_strategies_cover_every_fact_of_the_fake():
    assert set(FACT_STRATEGIES) == {f.name for f in fields(FakeFacts)} - {"lines_consolidated"}
