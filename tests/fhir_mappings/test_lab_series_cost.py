"""The nadir search (progression._rise_events) and the FLC regrouping (labs.flc_assays) read a series
once; their output is pinned to the prefix-scanning versions they replaced, on a long, realistic series
(years of monthly SPEPs with bounds and repeats; FLC draws with and without specimens)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from fhir_samples import KAPPA, LAMBDA, PATIENT, RATIO, lab, searchset

from fhir_mappings import labs
from fhir_mappings.facts import Evidence
from fhir_mappings.labs import FlcAssay, flc_assays, lab_results
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.progression import DFLC, MIN_RELATIVE_RISE, SERUM, Point, _rise_events


def prefix_scan_rise_events(series, marker):
    """The replaced version: the nadir is the minimum over the whole prefix, recomputed for every point."""
    events = []
    for i in range(1, len(series)):
        current = series[i]
        candidates = [p for p in series[:i] if p.high is not None]
        if current.low is None or not candidates:
            continue
        nadir = min(candidates, key=lambda p: p.high)
        rise = round(current.low - nadir.high, 6)
        relative = round(rise / nadir.high, 6) if nadir.high > 0 else (float("inf") if rise > 0 else 0.0)
        absolute_ok = rise > marker.absolute_rise if marker.strictly_greater else rise >= marker.absolute_rise
        if absolute_ok and relative >= MIN_RELATIVE_RISE:
            events.append((current, nadir, rise, relative))
    return events


def grown_series(n: int, seed: int, scale: float) -> list[Point]:
    """Monthly results over years: responses, relapses, repeats of equal values, a bound below the
    limit of quantitation ("<0.1 g/dL") and above the range (">5.0 g/dL"); dFLC is on a 20-fold scale."""
    rng = random.Random(seed)
    value, day, points = 3.0, date(2010, 1, 4), []
    for i in range(n):
        value = max(0.0, round(value * rng.choice((0.6, 0.8, 1.0, 1.0, 1.2, 1.5)) + rng.choice((-0.2, 0, 0.1, 0.3)), 1))
        if value < 0.1:
            low, high = 0.0, 0.1
        elif value > 5.0:
            low, high = 5.0, None
        else:
            low = high = value
        low, high = low * scale, None if high is None else high * scale
        ref = f"Observation/result-{i}"
        points.append(Point(day, low, high, ref, Evidence(ref, "Observation.valueQuantity")))
        day += timedelta(days=rng.choice((14, 28, 31)))
    return points


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("marker, scale", [(SERUM, 1), (DFLC, 20)])
def test_rise_events_are_those_of_the_prefix_scan(seed, marker, scale):
    series = grown_series(1500, seed, scale)
    got = _rise_events(series, marker)
    expected = prefix_scan_rise_events(series, marker)
    assert len(expected) > 20  # the series does relapse
    assert [(c.evidence, n.evidence, r, rel) for c, n, r, rel in got] == \
           [(c.evidence, n.evidence, r, rel) for c, n, r, rel in expected]


def rescanning_flc_assays(record):
    """The replaced version: every specimen-less group rescans all groups for the day's specimens."""
    groups = {}
    for part, vs_id in (("kappa", "serum-free-kappa"), ("lambda", "serum-free-lambda"), ("ratio", "serum-flc-ratio")):
        for result in lab_results(record, vs_id):
            groups.setdefault((result.span, labs._specimen(result)), {})[part] = result
    for (span, specimen), parts in list(groups.items()):
        if specimen is not None:
            continue
        named = [key for key in groups if key[0] == span and key[1] is not None]
        if len(named) == 1:
            target = groups[named[0]]
            for part, result in parts.items():
                target.setdefault(part, result)
            del groups[(span, specimen)]
    return [
        FlcAssay(span, parts.get("kappa"), parts.get("lambda"), parts.get("ratio"))
        for (span, _), parts in sorted(groups.items(), key=lambda item: (item[0][0].latest, item[0][0].earliest,
                                                                           item[0][1] or ""))
    ]


def grown_flc_record(draws: int, seed: int) -> PatientRecord:
    """FLC draws over years: most with a specimen on all three results, some where the LIS left the
    specimen off the ratio or off everything, some days with two specimens (a redraw)."""
    rng = random.Random(seed)
    resources, day = [], date(2012, 3, 1)
    for i in range(draws):
        when = f"{day.isoformat()}T07:30:00-05:00"
        specimens = [f"Specimen/flc-{i}"] + ([f"Specimen/flc-{i}-redraw"] if rng.random() < 0.1 else [])
        for s, specimen in enumerate(specimens):
            style = rng.choice(("all", "all", "ratio-unlinked", "none"))
            for part, loinc, value, unit in (("k", KAPPA, rng.uniform(5, 900), "mg/L"),
                                             ("l", LAMBDA, rng.uniform(3, 30), "mg/L"),
                                             ("r", RATIO, rng.uniform(0.2, 60), "{ratio}")):
                linked = style == "all" or (style == "ratio-unlinked" and part != "r")
                extra = {"specimen": {"reference": specimen}} if linked else {}
                resources.append(lab(f"{part}-{i}-{s}", loinc, round(value, 2), unit, when=when, **extra))
        day += timedelta(days=rng.choice((1, 30, 31)))  # a next-day repeat now and then
    return PatientRecord.build(PATIENT, [searchset(*resources)])


@pytest.mark.parametrize("seed", [7, 8])
def test_flc_regrouping_is_that_of_the_rescan(seed):
    record = grown_flc_record(600, seed)
    got = flc_assays(record)
    assert got == rescanning_flc_assays(record)
    assert len(got) > 600  # redraws and unlinked results really occur
