"""Unit conversion per analyte: UCUM and the unit strings EHRs really send, read by meaning, never guessed."""

from __future__ import annotations

import pytest

from fhir_mappings.units import (
    FLC_RATIO,
    FREE_LIGHT_CHAIN,
    PERCENT,
    SERUM_M_PROTEIN,
    URINE_M_PROTEIN_24H,
    UnitProblem,
    to_canonical,
)

UCUM = "http://unitsofmeasure.org"


def q(value, code=None, unit=None, system=UCUM, **extra):
    out = {"value": value, **extra}
    if code is not None:
        out.update({"code": code, "system": system})
    if unit is not None:
        out["unit"] = unit
    return out


@pytest.mark.parametrize(
    "analyte, quantity, expected",
    [
        (SERUM_M_PROTEIN, q(1.2, "g/dL"), 1.2),
        (SERUM_M_PROTEIN, q(12, "g/L"), 1.2),
        (SERUM_M_PROTEIN, q(1200, "mg/dL"), 1.2),
        (SERUM_M_PROTEIN, q(0.6, unit="g/dL"), 0.6),  # Epic-style: display unit only
        (URINE_M_PROTEIN_24H, q(250, "mg/(24.h)"), 250.0),
        (URINE_M_PROTEIN_24H, q(250, "mg/d"), 250.0),
        (URINE_M_PROTEIN_24H, q(0.25, "g/(24.h)"), 250.0),
        (URINE_M_PROTEIN_24H, q(0.25, "g/d"), 250.0),
        (FREE_LIGHT_CHAIN, q(100, "mg/L"), 10.0),
        (FREE_LIGHT_CHAIN, q(10, "mg/dL"), 10.0),
        (FLC_RATIO, q(1.8, "{ratio}"), 1.8),
        (FLC_RATIO, q(1.8, "1"), 1.8),
        (FLC_RATIO, q(1.8), 1.8),
        (PERCENT, q(35, "%"), 35.0),
        (SERUM_M_PROTEIN, q("1.5", "g/dL"), 1.5),  # decimal serialised as a string
        (SERUM_M_PROTEIN, q(5, "g/L"), 0.5),  # exactly, not 0.49999999999999994
    ],
)
def test_accepted_units_convert_to_canonical(analyte, quantity, expected):
    assert to_canonical(quantity, analyte).value == pytest.approx(expected)


@pytest.mark.parametrize(
    "analyte, quantity, reason",
    [
        (SERUM_M_PROTEIN, q(1.2), "no unit"),
        (FREE_LIGHT_CHAIN, q(100), "no unit"),
        (SERUM_M_PROTEIN, q(1.2, "mmol/L"), "not a mass/volume unit"),
        (SERUM_M_PROTEIN, q(12, "g%"), "not a mass/volume unit"),  # an M-spike is also a % of total protein
        (SERUM_M_PROTEIN, q(12, "mg/(24.h)"), "not a mass/volume unit"),
        (URINE_M_PROTEIN_24H, q(250, "mg/{24hrs}"), "not a mass/time unit"),  # UCUM: mg per unity
        (URINE_M_PROTEIN_24H, q(250, "mg/12h"), "not a mass/time unit"),
        (URINE_M_PROTEIN_24H, q(250, "mg/24.h"), "not a mass/time unit"),  # UCUM: (mg/24).h, not per day
        (URINE_M_PROTEIN_24H, q(250, "mg"), "not a mass/time unit"),
        (FREE_LIGHT_CHAIN, q(100, "mg/L", unit="mg/dL"), "disagree"),  # code and display contradict
        (FLC_RATIO, q(1.8, "mg/L"), "not a ratio unit"),
        (SERUM_M_PROTEIN, q(0.5, "g/dL", comparator="≤"), "not a FHIR comparator"),
        (URINE_M_PROTEIN_24H, q(25, "mg/dL"), "spot-urine concentration"),
        (URINE_M_PROTEIN_24H, q(25, unit="MG/DL", system=None), "spot-urine concentration"),
        (SERUM_M_PROTEIN, {"unit": "g/dL"}, "no numeric value"),
        (SERUM_M_PROTEIN, None, "no quantity"),
        (SERUM_M_PROTEIN, q(True, "g/dL"), "no numeric value"),
    ],
)
def test_missing_or_unconvertible_units_are_refused_with_the_raw_value(analyte, quantity, reason):
    with pytest.raises(UnitProblem) as caught:
        to_canonical(quantity, analyte)
    assert reason in caught.value.reason
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), (int, float)) and not isinstance(quantity["value"], bool):
        assert caught.value.raw_value == quantity["value"]


def test_ucum_code_wins_over_an_unreadable_display_and_a_foreign_system_falls_back_to_display():
    assert to_canonical(q(12, "g/L", unit="grams per litre"), SERUM_M_PROTEIN).value == pytest.approx(1.2)
    local = q(1.2, "GDL", unit="g/dL", system="urn:oid:1.2.3")
    assert to_canonical(local, SERUM_M_PROTEIN).value == pytest.approx(1.2)


def test_comparator_is_kept():
    converted = to_canonical(q(0.1, "g/dL", comparator="<"), SERUM_M_PROTEIN)
    assert (converted.value, converted.comparator) == (0.1, "<")


@pytest.mark.parametrize(
    "analyte, quantity, expected",
    [
        # UCUM defines l and L both as the litre
        (SERUM_M_PROTEIN, q(1.2, "g/dl"), 1.2),
        (SERUM_M_PROTEIN, q(1200, "mg/dl"), 1.2),
        (FREE_LIGHT_CHAIN, q(100, "mg/l"), 10.0),
        # UCUM case-insensitive forms, as HL7 v2 feeds send them
        (SERUM_M_PROTEIN, q(1.2, "G/DL"), 1.2),
        (FREE_LIGHT_CHAIN, q(100, unit="MG/L"), 10.0),
        # common EHR strings, display unit only
        (SERUM_M_PROTEIN, q(0.8, unit="gm/dL"), 0.8),
        (SERUM_M_PROTEIN, q(0.8, unit="g/100mL"), 0.8),
        (SERUM_M_PROTEIN, q(0.8, unit="g/100 mL"), 0.8),
        (SERUM_M_PROTEIN, q(8, unit="g/L "), 0.8),
        (FREE_LIGHT_CHAIN, q(250, unit="mcg/mL"), 25.0),
        (URINE_M_PROTEIN_24H, q(350, unit="mg/24h"), 350.0),
        (URINE_M_PROTEIN_24H, q(350, unit="mg/24 hr"), 350.0),
        (URINE_M_PROTEIN_24H, q(350, unit="mg/24 hrs"), 350.0),
        (URINE_M_PROTEIN_24H, q(350, unit="mg/24 hours"), 350.0),
        (URINE_M_PROTEIN_24H, q(350, unit="mg/day"), 350.0),
        (URINE_M_PROTEIN_24H, q(0.35, unit="g/24 h"), 350.0),
        (URINE_M_PROTEIN_24H, q(350, "mg/(24.h)", unit="mg/24 hr"), 350.0),  # code and display agree
        (FLC_RATIO, q(1.8, unit="Ratio"), 1.8),
        (FLC_RATIO, q(1.8, "{K/L}"), 1.8),  # a UCUM annotation alone is the unity
        # a local code with no system gives way to a readable display unit
        (SERUM_M_PROTEIN, q(1.2, "GDL", unit="g/dL", system=None), 1.2),
    ],
)
def test_ucum_equivalents_and_common_ehr_spellings(analyte, quantity, expected):
    assert to_canonical(quantity, analyte).value == expected


def test_an_unreadable_ucum_code_is_not_overridden_by_the_display_unit():
    with pytest.raises(UnitProblem) as caught:
        to_canonical(q(1.2, "g/dL/x", unit="g/dL"), SERUM_M_PROTEIN)
    assert caught.value.raw_unit == "g/dL/x" and caught.value.raw_value == 1.2
