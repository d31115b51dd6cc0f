"""Compare a service response with a scenario's expected decision (for the scenario tests and the demo).

The expected files are policy test cases (``cds_service.policy_cases``, ``cart-cds policy test``); the
comparison lives there and is re-exported here for the demo and the tests.

The expected file names the CAR-T order's verdict and the status of each criterion that decides it
(plus, when a tocilizumab order is co-signed, that order's verdict and criteria). A response matches
when the ``cart-cds.decision`` extension of the card for each named order has that verdict and those
statuses; criteria the expected file does not name are not compared.
"""

from __future__ import annotations

import json
from pathlib import Path

from cds_service.policy_cases import deciding_criteria, decisions, mismatches  # noqa: F401 (re-exported)
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
