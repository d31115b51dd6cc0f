"""Layering rules of docs/architecture.md, checked on the source text.

Dependencies point one way: ``cds_service -> policies -> fhir_mappings``; nothing imports ``sandbox`` or
``tests``; ``cds_service`` uses only the public surface of ``policies`` and ``fhir_mappings`` (the names
in their ``__all__``, imported from the package), and each ``__all__`` is exactly the package's names in
the contract table of docs/architecture.md; and ``cds_service`` (HTTP, CDS Hooks, CRD) knows nothing
about myeloma: no myeloma, BCMA or M-protein words and no LOINC codes in its source or schemas.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("cds_service", "fhir_mappings", "policies", "sandbox")
PUBLIC_SURFACES = ("fhir_mappings", "policies")  # the service may use only their __all__
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


def non_public_imports(source: str, package: str, public: set[str]) -> list[str]:
    """The imports in ``source`` that reach into ``package`` past its public surface: a module inside it,
    the package object itself, or a name outside ``public``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == package]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != package:
                continue
            if node.module != package:
                found.append(f"from {node.module}")
            else:
                found += [alias.name for alias in node.names if alias.name not in public]
    return found


def contract_table_names(markdown: str) -> dict[str, set[str]]:
    """package -> the names listed for it in the contract table (a row's package is that of the first
    module path in its module column)."""
    table = markdown.split("## Contracts", 1)[1].split("\n### ", 1)[0]
    names: dict[str, set[str]] = {}
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) < 4 or not row.startswith("|"):
            continue
        listed = re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[1])
        module = re.search(r"`([a-z_]+)/", cells[2])
        if listed and module:
            names.setdefault(module.group(1), set()).update(listed)
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


def test_service_imports_only_the_public_surface_of_policies_and_fhir_mappings():
    offenders = {}
    for package in PUBLIC_SURFACES:
        public = set(importlib.import_module(package).__all__)
        for path in _sources("cds_service"):
            found = non_public_imports(path.read_text(encoding="utf-8"), package, public)
            if found:
                offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}


@pytest.mark.parametrize("package", PUBLIC_SURFACES)
def test_public_surface_is_the_contract_table(package):
    module = importlib.import_module(package)
    documented = contract_table_names((REPO / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert sorted(module.__all__) == sorted(documented[package])
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


def test_surface_scanner_flags_modules_packages_and_unlisted_names():
    source = ("from policies import evaluate, _private\nfrom policies.engine import evaluate\n"
              "import policies.model\nfrom fhir_mappings import Observed\nfrom . import policies")
    assert non_public_imports(source, "policies", {"evaluate"}) == [
        "_private", "from policies.engine", "policies.model"]


def test_contract_table_reader_groups_names_by_the_module_package():
    markdown = ("## Contracts\n\n| contract | names | module | between |\n| --- | --- | --- | --- |\n"
                "| Facts | `Observed`, `Unknown` | `fhir_mappings/facts.py` | x |\n"
                "| Decision | `Verdict` | `policies/decision.py` | x |\n"
                "| Value sets | | `fhir_mappings/terminology.py` | x |\n\n### Next\n| a | `Nope` | `policies/x.py` | y |\n")
    assert contract_table_names(markdown) == {"fhir_mappings": {"Observed", "Unknown"}, "policies": {"Verdict"}}


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
