"""The fact modules of ``fhir_mappings`` import each other without cycles, counting imports inside
functions too: a cycle hidden in a function body is still a cycle (the two modules cannot be read,
tested or moved apart), and it breaks as soon as someone hoists the import."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fhir_mappings"


def imports_within_package() -> dict[str, set[str]]:
    """module name -> the ``fhir_mappings`` modules it imports (anywhere in its source)."""
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "fhir_mappings":
                found.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fhir_mappings."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("fhir_mappings."))
        graph[path.stem] = found - {path.stem}
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None (depth-first search)."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_fhir_mappings_modules_import_each_other_without_cycles():
    assert cycle_in(imports_within_package()) is None


def test_the_cycle_search_finds_a_cycle_through_a_function_level_import():
    assert cycle_in({"therapy": {"orders"}, "lines_of_therapy": {"therapy"}}) is None
    assert cycle_in({"therapy": {"lines_of_therapy"}, "lines_of_therapy": {"therapy"}}) == [
        "lines_of_therapy", "therapy", "lines_of_therapy"]
