"""The member's Coverage and its line of business (commercial, marketplace, ichra, medicaid).

The line of business is read from ``Coverage.type`` codings, from ``Coverage.class`` entries whose
``type`` is coded in a table system (then ``class.value`` is the code), and from a ``class.value`` that is
one of our line-of-business codes (``ichra`` on a plan class), through a code table: exact
codes and code prefixes (SOPT ``2`` covers ``21``, ``211``...), each naming its line of business. The
default table is ``value_sets/line-of-business.json``; a deployment replaces it with
``load_line_of_business_table(path)`` (setting ``CART_CDS_LINE_OF_BUSINESS_TABLE``). When nothing in the
Coverage is in the table, or two codes disagree, the line of business is ``None`` (cannot tell).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from fhir_mappings.facts import CoverageFinding, Evidence, Fact, Observed, Unknown
from fhir_mappings.patient_record import PatientRecord
from fhir_mappings.terminology import canonical_system, codings_of

LINES_OF_BUSINESS = frozenset({"commercial", "marketplace", "ichra", "medicaid"})


class LineOfBusinessTableError(ValueError):
    """The table file is not valid; the message names the file and the entry."""


@dataclass(frozen=True)
class LineOfBusinessTable:
    codes: dict[tuple[str, str], str]  # (system, code) -> line of business
    prefixes: tuple[tuple[str, str, str], ...]  # (system, prefix, line of business), longest first

    @property
    def systems(self) -> frozenset[str]:
        return frozenset(s for s, _ in self.codes) | frozenset(s for s, _, _ in self.prefixes)

    def lookup(self, system, code) -> str | None:
        if not isinstance(system, str) or not isinstance(code, str):
            return None
        system, code = canonical_system(system), code.strip()
        if (system, code) in self.codes:
            return self.codes[(system, code)]
        return next((lob for s, p, lob in self.prefixes if s == system and code.startswith(p)), None)


def parse_line_of_business_table(data, where: str) -> LineOfBusinessTable:
    if not isinstance(data, dict):
        raise LineOfBusinessTableError(f"{where}: expected a JSON object with 'codes' and/or 'prefixes'")
    codes: dict[tuple[str, str], str] = {}
    prefixes: list[tuple[str, str, str]] = []
    for kind, key in (("codes", "code"), ("prefixes", "prefix")):
        entries = data.get(kind, [])
        if not isinstance(entries, list):
            raise LineOfBusinessTableError(f"{where}: '{kind}' must be a list")
        for i, entry in enumerate(entries):
            system = entry.get("system") if isinstance(entry, dict) else None
            value = entry.get(key) if isinstance(entry, dict) else None
            lob = entry.get("line_of_business") if isinstance(entry, dict) else None
            if not (isinstance(system, str) and system and isinstance(value, str) and value):
                raise LineOfBusinessTableError(f"{where}: {kind}[{i}] needs 'system' and '{key}' strings")
            if lob not in LINES_OF_BUSINESS:
                raise LineOfBusinessTableError(
                    f"{where}: {kind}[{i}].line_of_business must be one of {sorted(LINES_OF_BUSINESS)}"
                )
            if kind == "codes":
                codes[(system, value)] = lob
            else:
                prefixes.append((system, value, lob))
    if not codes and not prefixes:
        raise LineOfBusinessTableError(f"{where}: the table has no codes or prefixes")
    prefixes.sort(key=lambda p: -len(p[1]))
    return LineOfBusinessTable(codes, tuple(prefixes))


def load_line_of_business_table(path: str | Path) -> LineOfBusinessTable:
    """Read a table file (format of ``value_sets/line-of-business.json``); errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LineOfBusinessTableError(f"{path}: cannot read JSON ({type(error).__name__})") from None
    return parse_line_of_business_table(data, str(path))


LINE_OF_BUSINESS_SYSTEM = "https://cart-cds.example.org/fhir/CodeSystem/line-of-business"


@cache
def default_line_of_business_table() -> LineOfBusinessTable:
    text = (resources.files("fhir_mappings") / "value_sets" / "line-of-business.json").read_text(encoding="utf-8")
    return parse_line_of_business_table(json.loads(text), "line-of-business.json")


def _codings(coverage: dict, table: LineOfBusinessTable):
    """(element path, system, code) of every coding that may name the line of business."""
    concept = coverage.get("type")
    for coding in codings_of(concept):
        yield "Coverage.type", coding.get("system"), coding.get("code")
    for entry in coverage.get("class") or ():
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), dict):
            continue
        for coding in codings_of(entry["type"]):
            yield "Coverage.class.type", coding.get("system"), coding.get("code")
            system = coding.get("system")
            if isinstance(system, str) and canonical_system(system) in table.systems:
                yield "Coverage.class.value", system, entry.get("value")
        # A plan class (coverage-class#plan, or any class) whose value is one of our line-of-business
        # codes names it directly, as EHRs without a coded plan type send it.
        yield "Coverage.class.value", LINE_OF_BUSINESS_SYSTEM, entry.get("value")


def _payer(record: PatientRecord, coverage: dict) -> str | None:
    for payor in coverage.get("payor") or ():
        if not isinstance(payor, dict):
            continue
        org = record.resolve(payor)
        name = org.get("name") if isinstance(org, dict) else None
        name = name if isinstance(name, str) else payor.get("display")
        if isinstance(name, str) and name.strip():
            return name.strip()
    return None


def _order(coverage: dict) -> int:
    order = coverage.get("order")
    return order if isinstance(order, int) and not isinstance(order, bool) else 1_000_000


def coverage(record: PatientRecord, table: LineOfBusinessTable | None = None) -> Fact[CoverageFinding]:
    """The primary active Coverage (lowest ``order``) whose beneficiary is the patient, with its line of
    business (None when the table cannot tell)."""
    table = table or default_line_of_business_table()
    outcome = record.retrieval("Coverage")
    active = [c for c in record.of_type("Coverage") if c.get("status") == "active" and record.well_formed(c)]
    if not active:
        if not outcome.usable_in_full:
            return Unknown(f"Coverage not fully retrieved ({outcome.reason or outcome.state.value})", True)
        return Unknown("no active Coverage for the patient")
    chosen = min(active, key=_order)
    reference = record.reference_of(chosen)
    hits = [(path, code, lob) for path, system, code in _codings(chosen, table) if (lob := table.lookup(system, code))]
    lines = {lob for _, _, lob in hits}
    line = lines.pop() if len(lines) == 1 else None
    evidence = tuple(Evidence(reference, path, code) for path, code, _ in hits) or (Evidence(reference, "Coverage.type"),)
    return Observed(CoverageFinding(reference, line, _payer(record, chosen)), evidence)
