"""UCUM conversion per analyte: exact, case-sensitive, never guessed."""

from __future__ import annotations

import pytest

from fhir_mappings.units import FLC_RATIO, FREE_LIGHT_CHAIN, PERCENT, SERUM_M_PROTEIN, URINE_M_PROTEIN_24H, UnitProblem, to_canonical

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
    ],
)
def test_accepted_units_convert_to_canonical(analyte, quantity, expected):
    assert to_canonical(quantity, analyte).value == pytest.approx(expected)


@pytest.mark.parametrize(
    "analyte, quantity, reason",
    [
        (SERUM_M_PROTEIN, q(1.2), "no unit"),
        (FREE_LIGHT_CHAIN, q(100), "no unit"),
        (SERUM_M_PROTEIN, q(1.2, "G/DL"), "not one of"),  # UCUM is case-sensitive
        (SERUM_M_PROTEIN, q(1.2, "mmol/L"), "not one of"),
        (URINE_M_PROTEIN_24H, q(250, "mg/24.h"), "not one of"),  # (mg/24).h, not per day
        (URINE_M_PROTEIN_24H, q(25, "mg/dL"), "spot-urine concentration"),
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


def test_ucum_code_wins_over_display_and_a_foreign_system_falls_back_to_display():
    assert to_canonical(q(12, "g/L", unit="g/dL"), SERUM_M_PROTEIN).value == pytest.approx(1.2)
    local = q(1.2, "GDL", unit="g/dL", system="urn:oid:1.2.3")
    assert to_canonical(local, SERUM_M_PROTEIN).value == pytest.approx(1.2)


def test_comparator_is_kept():
    converted = to_canonical(q(0.1, "g/dL", comparator="<"), SERUM_M_PROTEIN)
    assert (converted.value, converted.comparator) == (0.1, "<")
