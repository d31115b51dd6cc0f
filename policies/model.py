"""A loaded policy file as immutable values: identity, product, the criteria trees, referrals and terms.

Built only by ``policies.loader`` (after schema and registry validation), read by the engine and by
applicability. Every criterion keeps the JSON pointer of its node in the source file so that later
errors can still name where a criterion came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any

from fhir_mappings.facts import Coded
from policies.decision import ApprovalTerms, ReferralPolicy

EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Criterion:
    """One node of a criteria tree keyed by the policy's own numbering.

    A leaf names a ``check`` (with ``params``). A group combines its ``children`` with ``logic``
    (``all``/``any``/``n_of``). A group may also name its own check, which then must hold as well
    (I.A.5: "at least N prior lines" is the group's own check, "that include a, b and c" its children).
    """

    id: str
    text: str
    pointer: str
    check: str | None = None
    params: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    logic: str | None = None
    n: int | None = None
    documentation: str | None = None
    children: tuple[Criterion, ...] = ()

    def walk(self) -> Iterator[Criterion]:
        """This node and all its descendants, pre-order."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class Product:
    display: str  # clinician-facing, e.g. "Abecma (idecabtagene vicleucel)"
    names: tuple[str, ...]  # lower-case names that identify the product in order text
    codes: tuple[Coded, ...]  # RxNorm / HCPCS / configured codes that identify the product
    value_set: str  # drug value set of this product (prior infusion = continued therapy)


@dataclass(frozen=True)
class ReferralRule:
    """I.B / II.B: the policies to refer to by line of business, for one kind of referral."""

    criterion: str  # "I.B.1.a"
    kind: str  # no-coverage-criteria | non-formulary | off-label
    by_line_of_business: Mapping[str, str]  # line of business -> policy id

    def policies(self, lines_of_business: tuple[str, ...]) -> tuple[ReferralPolicy, ...]:
        return tuple(
            ReferralPolicy(lob, self.kind, self.by_line_of_business[lob])
            for lob in lines_of_business
            if lob in self.by_line_of_business
        )


@dataclass(frozen=True)
class Referrals:
    id: str  # "I.B" or "II.B"
    text: str
    rules: tuple[ReferralRule, ...]


@dataclass(frozen=True)
class Policy:
    id: str  # "CP.PHAR.481"
    title: str
    version: str
    effective: str  # the policy text's own "Effective Date" (descriptive)
    in_force_from: date  # first day this version decides orders
    in_force_until: date | None  # last day, when the file says; else until a later version supersedes it
    last_review: str
    lines_of_business: tuple[str, ...]  # commercial | marketplace | ichra | medicaid
    product: Product
    initial: Criterion  # section I.A
    continued: Criterion  # II.A.1
    exclusions: tuple[Criterion, ...]  # III.A, III.B
    other_diagnoses: Referrals  # I.B
    continued_other_diagnoses: Referrals  # II.B
    referral_when_not_met: str  # the criterion whose not-met means "not multiple myeloma" (-> I.B)
    approval: ApprovalTerms
    tocilizumab: Criterion  # I.A.approval.tocilizumab
    source: str  # file name the policy was loaded from

    @property
    def required(self) -> tuple[Criterion, ...]:
        """The criteria every CAR-T request must meet: I.A, II.A.1 and the section III exclusions."""
        return (self.initial, self.continued, *self.exclusions)

    def criteria(self) -> Iterator[Criterion]:
        for root in (*self.required, self.tocilizumab):
            yield from root.walk()


def in_force(policies: Iterable[Policy], on: date) -> tuple[Policy, ...]:
    """The version of each policy that decides an order dated ``on``.

    A payer revises a policy every year and mid-year; a directory may hold several versions of one
    policy id. The version in force is the one with the latest ``in_force_from`` on or before the date:
    a later version supersedes an earlier one from its first day. If that version's own ``until`` has
    passed (a withdrawn policy), no version is in force -- an earlier, superseded one never comes back.
    A policy with no version in force on the date covers no order (the service gives no guidance then,
    rather than judging an order by criteria not in force)."""
    latest: dict[str, Policy] = {}
    for policy in policies:
        if policy.in_force_from <= on:
            current = latest.get(policy.id)
            if current is None or policy.in_force_from > current.in_force_from:
                latest[policy.id] = policy
    return tuple(p for p in latest.values() if p.in_force_until is None or on <= p.in_force_until)
