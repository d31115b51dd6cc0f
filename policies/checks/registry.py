"""The check registry: policy files name checks, and names resolve only here.

A check is a pure function ``(facts, params, as_of, context) -> LeafResult`` registered with
``@check("name", params={...})``. ``params`` is the JSON Schema of the check's parameters (its
``properties``; all are required unless ``optional`` says otherwise), so the loader can reject a file
whose threshold has the wrong type before the service starts. ``value_set_params`` names the parameters
that hold value-set ids, which the loader checks against the shipped value sets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir_mappings.facts import Evidence, FactSource, Unknown
from policies.decision import Status
from policies.model import Product


@dataclass(frozen=True)
class LeafResult:
    status: Status
    reason: str
    evidence: tuple[Evidence, ...] = ()
    retrieval_failed: bool = False


@dataclass(frozen=True)
class OrderContext:
    """The order being decided, the other orders signed with it, and the product its policy covers."""

    order: dict
    draft_orders: tuple[dict, ...]
    product: Product


CheckFunction = Callable[[FactSource, Mapping[str, Any], date, OrderContext], LeafResult]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    function: CheckFunction
    params_schema: dict
    value_set_params: tuple[str, ...] = field(default=())


_REGISTRY: dict[str, CheckSpec] = {}

VALUE_SET_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True}
NON_NEGATIVE = {"type": "number", "minimum": 0}
DAYS = {"type": "integer", "minimum": 0}


def check(
    name: str,
    params: Mapping[str, dict] | None = None,
    optional: tuple[str, ...] = (),
    value_set_params: tuple[str, ...] = (),
) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``function`` under ``name``; ``params`` maps each parameter to its JSON Schema."""
    properties = dict(params or {})
    schema = {
        "type": "object",
        "properties": properties,
        "required": sorted(set(properties) - set(optional)),
        "additionalProperties": False,
    }

    def register(function: CheckFunction) -> CheckFunction:
        if name in _REGISTRY:
            raise ValueError(f"check {name!r} registered twice")
        _REGISTRY[name] = CheckSpec(name, function, schema, value_set_params)
        return function

    return register


def get_check(name: str) -> CheckSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown check {name!r}") from None


def check_names() -> frozenset[str]:
    return frozenset(_REGISTRY)


def unknown_fact(fact: Unknown, what: str) -> LeafResult:
    """A leaf that cannot be decided because its fact is unknown, keeping why (and whether the data
    could not be retrieved at all)."""
    return LeafResult(Status.UNKNOWN, f"{what}: {fact.reason}", fact.evidence, fact.retrieval_failed)
