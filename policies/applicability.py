"""Which loaded policy covers a draft order, and which orders are out of scope.

Runs before the patient's record is retrieved, from ``fhir_mappings.orders.ordered_product`` alone:
- a CAR-T order is in scope when any of its codings is one of its policy's product codes (policy file,
  the product's value set, or codes configured at deployment: ``extra_codes``), or -- for products with
  no code yet, such as KITE-772 -- when its text names the product ("anito-cel", "KITE 772");
  a code match wins over a name match, and a name that matches several policies decides nothing;
- a tocilizumab order (value set ``tocilizumab``) is in scope only when signed together with an
  in-scope CAR-T order, under that order's policy (the approval's tocilizumab allowance);
- everything else, and any cancelled/entered-in-error/revoked order, is out of scope.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from fhir_mappings.facts import Coded, OrderedProduct
from fhir_mappings.orders import ordered_product
from fhir_mappings.terminology import all_value_sets, value_set
from policies.model import Policy

TOCILIZUMAB_VALUE_SET = "tocilizumab"
NOT_BEING_ORDERED = frozenset({"cancelled", "entered-in-error", "revoked"})
ExtraCodes = Mapping[str, Iterable[Coded]]  # policy id -> configured product codes


@dataclass(frozen=True)
class ScopedOrder:
    order: dict
    product: OrderedProduct
    kind: str  # "car-t" | "tocilizumab"
    policy: Policy


def _normalise(text: str) -> str:
    """Lower case, hyphens and runs of spaces as one space: "KITE-772" and "kite 772" are the same."""
    return " ".join(re.sub(r"[-\u2010-\u2015_/]", " ", text.lower()).split())


def _names_text(product: OrderedProduct, name: str) -> bool:
    wanted = re.compile(r"(?<![a-z0-9])" + re.escape(_normalise(name)) + r"(?![a-z0-9])")
    return any(wanted.search(_normalise(text)) for text in product.names)


def _codes_match(product: OrderedProduct, policy: Policy, extra: Iterable[Coded]) -> bool:
    listed = {(c.system, c.code) for c in (*policy.product.codes, *extra)}
    product_set = all_value_sets().get(policy.product.value_set)
    return any(
        (c.system, c.code) in listed or (product_set is not None and product_set.contains(c.system, c.code))
        for c in product.codings
    )


def applicable_policy(
    product: OrderedProduct, policies: Sequence[Policy], extra_codes: ExtraCodes | None = None
) -> Policy | None:
    """The policy whose product this is, or None (out of scope)."""
    if product.status in NOT_BEING_ORDERED:
        return None
    extra_codes = extra_codes or {}
    for policy in policies:
        if _codes_match(product, policy, extra_codes.get(policy.id, ())):
            return policy
    by_name = [p for p in policies if any(_names_text(product, name) for name in p.product.names)]
    return by_name[0] if len(by_name) == 1 else None


def is_tocilizumab(product: OrderedProduct) -> bool:
    if product.status in NOT_BEING_ORDERED:
        return False
    toc = value_set(TOCILIZUMAB_VALUE_SET)
    return any(toc.contains(c.system, c.code) for c in product.codings) or any(
        toc.match_text(name) is not None for name in product.names
    )


def in_scope_orders(
    draft_orders: Sequence[dict],
    policies: Sequence[Policy],
    resolve: Callable[[str], dict | None] | None = None,
    extra_codes: ExtraCodes | None = None,
) -> tuple[ScopedOrder, ...]:
    """The in-scope orders among ``draft_orders``, CAR-T first, then co-signed tocilizumab orders.
    ``resolve`` finds a referenced Medication (e.g. in the request's bundle)."""
    products = [(order, ordered_product(order, resolve)) for order in draft_orders]
    car_t = []
    for order, product in products:
        policy = applicable_policy(product, policies, extra_codes)
        if policy is not None:
            car_t.append(ScopedOrder(order, product, "car-t", policy))
    if not car_t:
        return ()
    tocilizumab = tuple(
        ScopedOrder(order, product, "tocilizumab", car_t[0].policy)
        for order, product in products
        if is_tocilizumab(product) and applicable_policy(product, policies, extra_codes) is None
    )
    return (*car_t, *tocilizumab)
