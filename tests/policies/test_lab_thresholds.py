"""I.A.4.a measurable disease with lab bounds and with disagreeing results in the window
(policies.checks.disease module docstring), both policies."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from policy_fakes import ABECMA_ORDER, AS_OF, FakeFacts, flc

from fhir_mappings.facts import Evidence, Measurement, Observed
from policies.decision import Status
from policies.engine import evaluate
from policies.loader import shipped_policies

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN
POLICIES = {p.id.rsplit(".", 1)[1]: p for p in shipped_policies()}
THRESHOLD = {"481": 0.5, "769": 1.0}  # serum M-protein g/dL


def day(n: int) -> date:
    return AS_OF - timedelta(days=n)


def m(value, comparator=None, days_ago=3, unit="g/dL", ref=None, others=()):
    ref = ref or f"Observation/lab-{days_ago}"
    return Measurement(value, unit, day(days_ago), ref, value, unit, comparator, tuple(others))


def fact(measurement: Measurement) -> Observed:
    shown = f"{measurement.comparator or ''}{measurement.value:g}"
    return Observed(measurement, (Evidence(measurement.reference, "Observation.valueQuantity", shown, measurement.unit),))


def criterion(policy, cid, **facts):
    decision = evaluate(POLICIES[policy], replace(FakeFacts(), **facts), ABECMA_ORDER, AS_OF)
    return next(c for c in decision.criteria if c.id == cid)


@pytest.mark.parametrize("policy", ["481", "769"])
@pytest.mark.parametrize("comparator, factor, expected", [
    ("<", 0.2, NOT_MET),  # "<0.1 g/dL" contradicts ">= 0.5 g/dL"
    ("<", 1.0, NOT_MET),  # "<0.5" cannot reach 0.5
    ("<", 1.4, UNKNOWN),  # "<0.7": 0.6 or 0.1
    ("<=", 1.0, UNKNOWN),  # "<=0.5" may be exactly 0.5
    ("<=", 0.8, NOT_MET),
    (">", 1.0, MET),
    (">=", 1.0, MET),
    (">", 0.8, UNKNOWN),  # ">0.4": 0.45 or 3.0
    (None, 1.0, MET),
    (None, 0.98, NOT_MET),
])
def test_serum_m_protein_bounds(policy, comparator, factor, expected):
    value = round(THRESHOLD[policy] * factor, 6)
    got = criterion(policy, "I.A.4.a.i", serum=fact(m(value, comparator)))
    assert got.status is expected, got.reason


def test_a_bound_is_shown_in_the_reason_and_evidence():
    got = criterion("481", "I.A.4.a.i", serum=fact(m(0.1, "<")))
    assert "<0.1 g/dL" in got.reason and got.evidence[0].value == "<0.1"


@pytest.mark.parametrize("latest, earlier, expected, disagree", [
    (0.4, 0.6, UNKNOWN, True),  # repeats lower in the window: the results disagree
    (0.6, 0.4, MET, False),  # rising: the latest shows measurable disease
    (0.3, 0.4, NOT_MET, False),  # both below
    (0.7, 0.9, MET, False),
    ((0.1, "<"), 0.8, UNKNOWN, True),  # a later "<0.1" after a measurable result
    ((0.7, "<"), 0.8, UNKNOWN, False),  # a bound that decides nothing
])
def test_two_results_in_the_window_that_disagree_are_unknown_never_met(latest, earlier, expected, disagree):
    value, comparator = latest if isinstance(latest, tuple) else (latest, None)
    serum = m(value, comparator, days_ago=2, others=(m(earlier, days_ago=20, ref="Observation/earlier"),))
    got = criterion("481", "I.A.4.a.i", serum=fact(serum))
    assert got.status is expected, got.reason
    assert ("Observation/earlier" in {e.reference for e in got.evidence}) is disagree
    assert ("disagree" in got.reason) is disagree


def test_an_earlier_result_outside_the_window_does_not_disagree():
    serum = m(0.4, days_ago=2, others=(m(0.9, days_ago=31, ref="Observation/old"),))
    assert criterion("481", "I.A.4.a.i", serum=fact(serum)).status is NOT_MET


@pytest.mark.parametrize("comparator, value, expected", [
    (">", 200, MET),  # above the upper limit of the 24-hour assay
    ("<", 200, NOT_MET),
    ("<", 250, UNKNOWN),
])
def test_urine_m_protein_bounds(comparator, value, expected):
    urine = fact(m(value, comparator, unit="mg/24 h"))
    assert criterion("769", "I.A.4.a.ii", urine=urine).status is expected


def light_chains(involved, comparator=None, ratio_abnormal=True, days_ago=14, others=()):
    base = flc(involved, ratio_abnormal, day(days_ago)).value
    value = replace(base, involved_comparator=comparator, others_in_window=tuple(others),
                    references=(f"Observation/kappa-{days_ago}", f"Observation/ratio-{days_ago}"))
    return Observed(value, (Evidence(f"Observation/ratio-{days_ago}", "Observation.valueQuantity", "8"),))


@pytest.mark.parametrize("comparator, involved, expected", [
    (">", 150.0, MET),  # "> 1500 mg/L": above the range without dilution
    (">", 8.0, UNKNOWN),
    ("<", 10.0, NOT_MET),
    ("<=", 10.0, UNKNOWN),
])
def test_involved_flc_bounds(comparator, involved, expected):
    got = criterion("481", "I.A.4.a.iii", light_chains=light_chains(involved, comparator))
    assert got.status is expected, got.reason


def test_a_later_partial_draw_with_a_normal_ratio_makes_a_met_assay_unknown():
    later = replace(flc(None, False, day(3)).value, kappa_mg_dl=None, references=("Observation/ratio-3",))
    got = criterion("481", "I.A.4.a.iii", light_chains=light_chains(42.0, others=(later,)))
    assert got.status is UNKNOWN and "Observation/ratio-3" in {e.reference for e in got.evidence}


def test_an_earlier_partial_draw_does_not_disagree_with_a_later_met_assay():
    earlier = replace(flc(None, False, day(25)).value, references=("Observation/ratio-25",))
    assert criterion("481", "I.A.4.a.iii", light_chains=light_chains(42.0, others=(earlier,))).status is MET


def test_two_draws_of_the_same_day_that_disagree_are_unknown():
    redraw = replace(flc(4.0, True, day(14)).value, references=("Observation/kappa-redraw",))
    got = criterion("481", "I.A.4.a.iii", light_chains=light_chains(42.0, others=(redraw,)))
    assert got.status is UNKNOWN and "Observation/kappa-redraw" in {e.reference for e in got.evidence}


def dated_to_month(measurement: Measurement, first: int, last: int) -> Measurement:
    """The result dated only to a span of days (``first`` .. ``last`` days before AS_OF), as a month is."""
    return replace(measurement, effective=day(last), effective_earliest=day(first))


@pytest.mark.parametrize("first, last, expected", [
    (25, 5, MET),  # every possible day within the 30 days
    (40, 10, UNKNOWN),  # may be 40 days old
    (60, 31, UNKNOWN),  # not within at all
])
def test_a_result_of_a_month_is_in_the_window_only_when_every_day_of_it_is(first, last, expected):
    got = criterion("481", "I.A.4.a.i", serum=fact(dated_to_month(m(0.9), first, last)))
    assert got.status is expected, got.reason
    assert f"{day(first).isoformat()}/{day(last).isoformat()}" in got.reason


def test_an_earlier_result_of_a_month_possibly_in_the_window_is_weighed():
    """0.4 g/dL on day -2; 0.9 g/dL some day of a month straddling the window's start: it may be in the
    window and meet the threshold, so the results may disagree (unknown), where a result certainly
    outside would leave the 0.4 not met."""
    serum = m(0.4, days_ago=2, others=(dated_to_month(m(0.9, ref="Observation/ext"), 45, 15),))
    got = criterion("481", "I.A.4.a.i", serum=fact(serum))
    assert got.status is UNKNOWN and "Observation/ext" in {e.reference for e in got.evidence}
