"""Compare a service response with a scenario's expected decision (for the scenario tests and the demo).

The expected file names the CAR-T order's verdict and the status of each criterion that decides it
(plus, when a tocilizumab order is co-signed, that order's verdict and criteria). A response matches
when the ``cart-cds.decision`` extension of the card for each named order has that verdict and those
statuses; criteria the expected file does not name are not compared.
"""

from __future__ import annotations

import json
from pathlib import Path

from cds_service.response.cards import card_decision
from sandbox.recorded import SANDBOX

HOOK_VARIANTS = ("prefetch", "no-prefetch", "partial-prefetch", "paginated-prefetch")  # in display order


def split_hook_name(hook_file: str | Path) -> tuple[str, str]:
    """(scenario, variant) of a hook file such as ``abecma-meets-all-criteria-no-prefetch.json``."""
    stem = Path(hook_file).stem
    for variant in sorted(HOOK_VARIANTS, key=len, reverse=True):  # every name ends in "-prefetch"
        if stem.endswith("-" + variant):
            return stem[: -len(variant) - 1], variant
    raise ValueError(f"{hook_file}: not a sandbox hook file name")


def scenario_of_hook(hook_file: str | Path) -> str:
    return split_hook_name(hook_file)[0]


def expected_for(scenario: str) -> dict:
    return json.loads((SANDBOX / "expected" / f"{scenario}.json").read_text(encoding="utf-8"))


def decisions(response: dict) -> dict[str, dict]:
    """order reference -> decision extension, from every card that carries one."""
    out = {}
    for card in response.get("cards", ()):
        decision = card_decision(card)
        if decision is not None and decision.get("order"):
            out[decision["order"]] = decision
    return out


def _compare(label: str, want: dict, order: str, found: dict[str, dict]) -> list[str]:
    decision = found.get(order)
    if decision is None:
        return [f"{label}: no decision for {order}"]
    problems = []
    if decision.get("verdict") != want["verdict"]:
        problems.append(f"{label}: verdict {decision.get('verdict')!r}, expected {want['verdict']!r}")
    if "policy" in want and decision.get("policy") != want["policy"]:
        problems.append(f"{label}: policy {decision.get('policy')!r}, expected {want['policy']!r}")
    statuses = {c.get("id"): c.get("status") for c in decision.get("criteria", ())}
    for cid, status in want["criteria"].items():
        if statuses.get(cid) != status:
            problems.append(f"{label}: {cid} is {statuses.get(cid)!r}, expected {status!r}")
    return problems


def mismatches(expected: dict, response: dict) -> list[str]:
    """Human-readable differences between a scenario's expected file and a hook response (empty = match)."""
    found = decisions(response)
    problems = _compare("CAR-T order", expected, expected["order"], found)
    toci = expected.get("tocilizumab")
    if toci:
        problems += _compare("tocilizumab order", toci, toci["order"], found)
    return problems


def deciding_criteria(decision: dict) -> list[str]:
    """The criteria that decide a verdict, for display: not-met ones, else unknown ones."""
    criteria = decision.get("criteria", ())
    for status in ("not-met", "unknown"):
        ids = [c["id"] for c in criteria if c.get("status") == status]
        if ids:
            return ids
    return []
