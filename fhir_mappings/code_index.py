"""Select a record's resources by the value set of one coded element, without testing every resource
against every value set.

A long chart holds thousands of Observations, and the facts ask for several analytes and statuses of
them (M-protein, each light chain, disease status ...). Matching each Observation's ``code`` against
each value set repeats the same work: the chart has a few dozen distinct codes. So the resources of a
type are indexed once per record by the (system, code) pairs and the texts of the element, each value
set is tested against the distinct keys, and only the resources behind a hit are matched again, with
``ValueSet.match`` itself, so the answer is exactly the one a full scan gives.
"""

from __future__ import annotations

from fhir_mappings.facts import Coded
from fhir_mappings.terminology import codings_of, value_set


def coded_in(record, resource_type: str, element: str, value_set_id: str) -> tuple[tuple[dict, Coded], ...]:
    """(resource, its match) for each resource of ``resource_type`` whose CodeableConcept ``element`` is in
    the value set (``ValueSet.match``: a coding in any position, else a text term), in record order.
    Memoised per record and value set."""
    return record.memo(("code_index.coded_in", resource_type, element, value_set_id),
                       lambda: _select(record, resource_type, element, value_set_id))


def _select(record, resource_type: str, element: str, value_set_id: str) -> tuple[tuple[dict, Coded], ...]:
    resources = record.of_type(resource_type)
    by_code, by_text = record.memo(("code_index.index", resource_type, element), lambda: _index(resources, element))
    vs = value_set(value_set_id)
    positions: set[int] = set()
    for (system, code), where in by_code.items():
        if vs.contains(system, code):
            positions.update(where)
    if vs.text_terms:
        for text, where in by_text.items():
            if vs.match_text(text) is not None:
                positions.update(where)
    out = []
    for position in sorted(positions):
        hit = vs.match(resources[position].get(element))
        if hit is not None:
            out.append((resources[position], hit))
    return tuple(out)


def _index(resources: tuple[dict, ...], element: str) -> tuple[dict[tuple[str, str], list[int]], dict[str, list[int]]]:
    """Positions of the resources by each (system, code) of ``element`` as sent, and by its text."""
    by_code: dict[tuple[str, str], list[int]] = {}
    by_text: dict[str, list[int]] = {}
    for position, resource in enumerate(resources):
        concept = resource.get(element)
        if not isinstance(concept, dict):
            continue
        for coding in codings_of(concept):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                by_code.setdefault((system, code), []).append(position)
        text = concept.get("text")
        if isinstance(text, str):
            by_text.setdefault(text, []).append(position)
    return by_code, by_text
