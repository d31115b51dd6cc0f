"""Kleene three-valued logic over criterion statuses (decision contract).

``all`` is not-met as soon as one child is not-met, else unknown if any child is unknown, else met;
``any`` is met as soon as one child is met, else unknown if any is unknown, else not-met. ``n_of`` is
met when at least ``n`` children are met, not-met when fewer than ``n`` could still be met. Unknown is
never promoted to met: that is the property the engine's safety rests on.
"""

from __future__ import annotations

from collections.abc import Iterable

from policies.decision import Status

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN


def all_of(statuses: Iterable[Status]) -> Status:
    """Conjunction; an empty conjunction is met."""
    result = MET
    for status in statuses:
        if status is NOT_MET:
            return NOT_MET
        if status is UNKNOWN:
            result = UNKNOWN
    return result


def any_of(statuses: Iterable[Status]) -> Status:
    """Disjunction; an empty disjunction is not met."""
    result = NOT_MET
    for status in statuses:
        if status is MET:
            return MET
        if status is UNKNOWN:
            result = UNKNOWN
    return result


def n_of(n: int, statuses: Iterable[Status]) -> Status:
    """At least ``n`` of the children are met."""
    statuses = tuple(statuses)
    met = sum(1 for s in statuses if s is MET)
    possible = met + sum(1 for s in statuses if s is UNKNOWN)
    if met >= n:
        return MET
    if possible < n:
        return NOT_MET
    return UNKNOWN


def negate(status: Status) -> Status:
    """Kleene negation: unknown stays unknown."""
    if status is MET:
        return NOT_MET
    if status is NOT_MET:
        return MET
    return UNKNOWN


def combine(logic: str | None, statuses: Iterable[Status], n: int | None = None) -> Status:
    """Apply a policy file's ``logic`` keyword (``all``, ``any`` or ``n_of`` with ``n``)."""
    if logic == "all":
        return all_of(statuses)
    if logic == "any":
        return any_of(statuses)
    if logic == "n_of" and n is not None:
        return n_of(n, statuses)
    raise ValueError(f"unknown logic {logic!r}")
