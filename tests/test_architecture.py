"""Layering rules of docs/architecture.md, checked on the source text.

Dependencies point one way: ``cds_service -> policies -> fhir_mappings``; nothing imports ``sandbox`` or
``tests``; and ``cds_service`` (HTTP, CDS Hooks, CRD) knows nothing about myeloma: no myeloma, BCMA or
M-protein words and no LOINC codes in its source or schemas.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("cds_service", "fhir_mappings", "policies", "sandbox")
FORBIDDEN_IMPORTS = {
    "fhir_mappings": {"policies", "cds_service", "sandbox", "tests"},
    "policies": {"cds_service", "sandbox", "tests"},
    "cds_service": {"sandbox", "tests"},
    "sandbox": {"tests"},
}
# Clinical vocabulary the protocol layer must not contain. LOINC codes are 1-5 digits, a hyphen and a
# check digit, standing alone (so dates, versions and UUIDs do not match).
MYELOMA_VOCABULARY = re.compile(
    r"myeloma|\bBCMA\b|\bM[-\s]?protein|paraprotein|(?<![\w.\-])\d{1,5}-\d(?![\w.\-])", re.IGNORECASE)


def imported_top_levels(source: str) -> set[str]:
    """Top-level package names imported by a module's source (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def vocabulary_hits(text: str) -> list[str]:
    return [match.group(0) for match in MYELOMA_VOCABULARY.finditer(text)]


def _sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package):
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_top_levels(path.read_text(encoding="utf-8"))
                                            & FORBIDDEN_IMPORTS[package])
        for path in _sources(package)
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_service_layer_has_no_myeloma_vocabulary():
    files = _sources("cds_service") + sorted((REPO / "cds_service").rglob("*.json"))
    hits = {str(path.relative_to(REPO)): vocabulary_hits(path.read_text(encoding="utf-8")) for path in files}
    assert {path: words for path, words in hits.items() if words} == {}


def test_import_scanner_sees_absolute_imports_only():
    source = "import policies.engine\nfrom fhir_mappings.facts import Observed\nfrom . import sibling\nimport os"
    assert imported_top_levels(source) == {"policies", "fhir_mappings", "os"}


@pytest.mark.parametrize("text", ["Multiple Myeloma", "anti-BCMA", "serum M-protein", "M protein",
                                  "code 33358-3", "'2458-8'"])
def test_vocabulary_scanner_finds_clinical_words_and_loinc_codes(text):
    assert vocabulary_hits(text)


@pytest.mark.parametrize("text", ["2026-11-24", "d5a80646-7ef5-4edf-ade9-72407ca28c76", "CP.PHAR.481",
                                  "version 2.2", "10485760", "cart-cds"])
def test_vocabulary_scanner_ignores_dates_uuids_and_ids(text):
    assert vocabulary_hits(text) == []
