"""UCUM units of the myeloma labs, converted to one canonical unit per analyte.

UCUM is case-sensitive and exact: ``mg/(24.h)`` is a daily amount, while ``mg/24.h`` parses as
(mg/24)*h and is refused. The UCUM ``code`` is authoritative when the quantity carries one; only when it
does not is the human-readable ``unit`` tried, with the same exact spelling. A value with no unit, or a
unit not listed for its analyte, is never guessed at: the caller gets ``UnitProblem`` and reports the
raw value as unknown. A urine concentration (mass/volume, a spot sample) is not a 24-hour amount: it
cannot be converted without the collection volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Analyte:
    name: str
    canonical: str
    factors: Mapping[str, float]  # accepted unit -> factor to the canonical unit
    unitless: bool = False  # a quantity with no unit at all is acceptable (ratios)
    concentration_units: frozenset[str] = field(default_factory=frozenset)  # spot-sample units to explain


SERUM_M_PROTEIN = Analyte("serum M-protein", "g/dL", {"g/dL": 1.0, "g/L": 0.1, "mg/dL": 0.001})
URINE_M_PROTEIN_24H = Analyte(
    "urine M-protein (24 h)",
    "mg/(24.h)",
    {"mg/(24.h)": 1.0, "mg/d": 1.0, "g/(24.h)": 1000.0, "g/d": 1000.0},
    concentration_units=frozenset({"mg/dL", "mg/L", "g/L", "g/dL", "mg/mL", "ug/mL"}),
)
FREE_LIGHT_CHAIN = Analyte("serum free light chain", "mg/dL", {"mg/dL": 1.0, "mg/L": 0.1})
FLC_RATIO = Analyte("free kappa/lambda ratio", "1", {"{ratio}": 1.0, "1": 1.0, "ratio": 1.0}, unitless=True)
PERCENT = Analyte("percentage", "%", {"%": 1.0})

COMPARATORS = frozenset({"<", "<=", ">", ">="})


@dataclass(frozen=True)
class Converted:
    value: float  # in the analyte's canonical unit
    unit: str
    raw_value: float
    raw_unit: str | None
    comparator: str | None = None  # "<" etc. when the lab reported a bound, not a value


class UnitProblem(ValueError):
    """The quantity cannot be expressed in the analyte's canonical unit. ``raw_value``/``raw_unit``
    are kept so the unknown fact can show what was received."""

    def __init__(self, reason: str, raw_value: float | None = None, raw_unit: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.raw_value = raw_value
        self.raw_unit = raw_unit


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):  # some servers serialise decimals as strings
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def unit_of(quantity: dict) -> str | None:
    """The unit to interpret: the UCUM ``code`` when given (system UCUM or absent), else ``unit``."""
    code, system = quantity.get("code"), quantity.get("system")
    if isinstance(code, str) and code.strip() and system in (None, UCUM):
        return code.strip()
    unit = quantity.get("unit")
    return unit.strip() if isinstance(unit, str) and unit.strip() else None


def to_canonical(quantity: dict | None, analyte: Analyte) -> Converted:
    """``quantity`` (a FHIR Quantity) in ``analyte.canonical``; raises ``UnitProblem``."""
    if not isinstance(quantity, dict):
        raise UnitProblem(f"{analyte.name}: no quantity value")
    raw = _number(quantity.get("value"))
    unit = unit_of(quantity)
    if raw is None:
        raise UnitProblem(f"{analyte.name}: no numeric value", None, unit)
    comparator = quantity.get("comparator")
    comparator = comparator if comparator in COMPARATORS else None
    if unit is None:
        if analyte.unitless:
            return Converted(raw, analyte.canonical, raw, None, comparator)
        raise UnitProblem(f"{analyte.name}: value has no unit; not converted", raw, None)
    factor = analyte.factors.get(unit)
    if factor is None:
        if unit in analyte.concentration_units:
            raise UnitProblem(
                f"{analyte.name}: {unit} is a spot-urine concentration, not a 24-hour amount", raw, unit
            )
        raise UnitProblem(f"{analyte.name}: unit {unit!r} is not one of {', '.join(analyte.factors)}", raw, unit)
    return Converted(round(raw * factor, 6), analyte.canonical, raw, unit, comparator)
