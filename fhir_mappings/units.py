"""Units of the myeloma labs, read as labs really write them and converted to one canonical unit per analyte.

A unit is read by meaning, not by spelling: it is parsed into a dimension (mass/volume, mass/time,
ratio, percent) and an exact factor to that dimension's base unit (g/L, g/day), and an analyte accepts
every unit of its dimension. What is accepted:

- UCUM as written: UCUM defines ``l`` and ``L`` both as the litre, so ``g/dl``, ``mg/dl`` and ``mg/l``
  are the same units as ``g/dL``, ``mg/dL`` and ``mg/L``; UCUM's case-insensitive forms (``G/DL``,
  ``MG/L``: HL7 v2 feeds send them) name the same units, since no case-sensitive reading of them names
  a mass per volume; ``mg/d`` and ``mg/(24.h)`` are both a daily amount.
- Common EHR unit strings whose meaning is not in doubt: ``gm`` for gram, ``mcg``/``ug``/``µg`` for
  microgram, ``g/100mL`` (= g/dL), ``mg/24h``, ``mg/24 hr``, ``mg/24hrs``, ``mg/day`` (none of them is
  valid UCUM, so none has another meaning). Spaces and letter case are not significant.
- Ratios: ``1``, ``{ratio}`` (any UCUM annotation alone is the unity), ``ratio``, or no unit at all.

Anything else is never guessed at: ``mg/24.h`` is valid UCUM for (mg/24).h, a mass times a time, so
whatever its writer meant it is ambiguous; ``mg/{24hrs}`` is UCUM for milligrams (the annotation is the
unity); ``g%`` could be g/dL or a percentage of total protein (an M-spike is reported both ways);
``mmol/L``, a mass with no unit. The caller gets ``UnitProblem`` and reports the raw value as unknown.
The UCUM ``code`` is the computable unit and wins over the display ``unit``; when both can be read and
they disagree (``code: g/L`` with ``unit: g/dL``) the quantity is unknown rather than one of them picked. A code with a foreign system, or with no system, that cannot be read gives way
to the display unit. A urine concentration (mass/volume, a spot sample) is not a 24-hour amount: it
cannot be converted without the collection volume.

A ``comparator`` other than FHIR's ``<``, ``<=``, ``>=``, ``>`` makes the value unreadable: read as a value it
could turn a bound into a false precise result.

Factors are exact fractions, so 5 g/L is 0.5 g/dL exactly, not 0.49999999999999994.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

UCUM = "http://unitsofmeasure.org"

MASS_PER_VOLUME = "mass/volume"
MASS_PER_TIME = "mass/time"
RATIO = "ratio"
PERCENTAGE = "percent"

_MASS = {  # grams
    "g": Fraction(1), "gm": Fraction(1), "gram": Fraction(1), "grams": Fraction(1),
    "mg": Fraction(1, 1000), "milligram": Fraction(1, 1000), "milligrams": Fraction(1, 1000),
    "ug": Fraction(1, 10**6), "mcg": Fraction(1, 10**6), "µg": Fraction(1, 10**6), "μg": Fraction(1, 10**6),
}
_VOLUME = {  # litres
    "l": Fraction(1), "dl": Fraction(1, 10), "100ml": Fraction(1, 10), "ml": Fraction(1, 1000),
}
_DAY_SPELLINGS = {"d", "day", "(24.h)", "(24h)", "24h", "24hr", "24hrs", "24hour", "24hours"}
_RATIO_SPELLINGS = {"1", "ratio"}
_ANNOTATION_ONLY = re.compile(r"^\{[^{}]*\}$")


@dataclass(frozen=True)
class Unit:
    """A parsed unit: its dimension and its exact factor to the dimension's base (g/L, g/day, 1, %)."""

    dimension: str
    factor: Fraction


@lru_cache(maxsize=512)  # a chart spells its units a few ways; the answers are immutable
def parse_unit(text: str) -> Unit | None:
    """The meaning of a unit string (module docstring), or None when it is not one of the accepted forms."""
    s = "".join(text.split()).lower()
    if s in _RATIO_SPELLINGS or _ANNOTATION_ONLY.match(s):
        return Unit(RATIO, Fraction(1))
    if s == "%":
        return Unit(PERCENTAGE, Fraction(1))
    mass, slash, per = s.partition("/")
    if not slash or mass not in _MASS:
        return None
    if per in _VOLUME:
        return Unit(MASS_PER_VOLUME, _MASS[mass] / _VOLUME[per])
    if per in _DAY_SPELLINGS:
        return Unit(MASS_PER_TIME, _MASS[mass])
    return None


@dataclass(frozen=True)
class Analyte:
    name: str
    canonical: str  # the canonical unit as shown
    unit: Unit  # the canonical unit parsed
    unitless: bool = False  # a quantity with no unit at all is acceptable (ratios)


SERUM_M_PROTEIN = Analyte("serum M-protein", "g/dL", Unit(MASS_PER_VOLUME, Fraction(10)))
URINE_M_PROTEIN_24H = Analyte("urine M-protein (24 h)", "mg/(24.h)", Unit(MASS_PER_TIME, Fraction(1, 1000)))
FREE_LIGHT_CHAIN = Analyte("serum free light chain", "mg/dL", Unit(MASS_PER_VOLUME, Fraction(1, 100)))
FLC_RATIO = Analyte("free kappa/lambda ratio", "1", Unit(RATIO, Fraction(1)), unitless=True)
PERCENT = Analyte("percentage", "%", Unit(PERCENTAGE, Fraction(1)))

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


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def unit_of(quantity: dict) -> str | None:
    """The unit string shown for a quantity: the UCUM ``code`` when given (system UCUM or absent), else
    the display ``unit``."""
    code = _text(quantity.get("code"))
    if code is not None and quantity.get("system") in (None, UCUM):
        return code
    return _text(quantity.get("unit"))


def _read_unit(quantity: dict, analyte: Analyte, raw: float) -> tuple[Unit | None, str | None]:
    """(parsed unit, unit string) of a quantity per the module docstring; raises ``UnitProblem`` when the
    code and the display unit disagree."""
    code, unit, system = _text(quantity.get("code")), _text(quantity.get("unit")), quantity.get("system")
    by_code = parse_unit(code) if code is not None and system in (None, UCUM) else None
    by_unit = parse_unit(unit) if unit is not None else None
    if by_code is not None and by_unit is not None and by_code != by_unit:
        raise UnitProblem(f"{analyte.name}: UCUM code {code!r} and unit {unit!r} disagree; not converted", raw, code)
    if by_code is not None:
        return by_code, code
    if code is not None and system == UCUM:
        return None, code  # the computable unit is authoritative, even when it cannot be read
    return by_unit, unit if unit is not None else code


def to_canonical(quantity: dict | None, analyte: Analyte) -> Converted:
    """``quantity`` (a FHIR Quantity) in ``analyte.canonical``; raises ``UnitProblem``."""
    if not isinstance(quantity, dict):
        raise UnitProblem(f"{analyte.name}: no quantity value")
    raw = _number(quantity.get("value"))
    if raw is None:
        raise UnitProblem(f"{analyte.name}: no numeric value", None, unit_of(quantity))
    comparator = quantity.get("comparator")
    if comparator is not None and comparator not in COMPARATORS:  # "≤", "lt": a bound of unknown direction
        raise UnitProblem(f"{analyte.name}: comparator {comparator!r} is not a FHIR comparator; not read", raw, unit_of(quantity))
    parsed, shown = _read_unit(quantity, analyte, raw)
    if shown is None:
        if analyte.unitless:
            return Converted(raw, analyte.canonical, raw, None, comparator)
        raise UnitProblem(f"{analyte.name}: value has no unit; not converted", raw, None)
    if parsed is None or parsed.dimension != analyte.unit.dimension:
        if parsed is not None and (parsed.dimension, analyte.unit.dimension) == (MASS_PER_VOLUME, MASS_PER_TIME):
            raise UnitProblem(f"{analyte.name}: {shown} is a spot-urine concentration, not a 24-hour amount", raw, shown)
        raise UnitProblem(
            f"{analyte.name}: unit {shown!r} is not a {analyte.unit.dimension} unit this service reads; not converted",
            raw, shown,
        )
    return Converted(_converted(raw, parsed.factor / analyte.unit.factor), analyte.canonical, raw, shown, comparator)


def _converted(raw: float, factor: Fraction) -> float:
    """``raw`` x ``factor`` in exact arithmetic, rounded to 6 decimals. Most lab values arrive in the
    canonical unit already (factor 1): a finite float is then its own exact value, without building a
    Fraction (which, for an infinite or NaN value, raises as before)."""
    if factor == 1 and math.isfinite(raw):
        return round(raw, 6)
    return round(float(Fraction(raw) * factor), 6)
