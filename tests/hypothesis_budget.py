"""How many examples a property test runs, by hypothesis profile (registered in tests/conftest.py).

A property test states its thorough budget, the number of examples CI runs
(``@settings(max_examples=examples(1500))``); the default profile, for the edit-test loop, runs the same
fraction of every budget. Examples are drawn from the same strategies either way, so the short run
explores the same space less deeply and the CI run keeps the full search.
"""

from __future__ import annotations

from hypothesis import settings

THOROUGH_PROFILE = "ci"


def examples(thorough: int) -> int:
    """``thorough`` under the CI profile; the loaded profile's share of it otherwise (at least one)."""
    share = settings.default.max_examples / settings.get_profile(THOROUGH_PROFILE).max_examples
    return max(1, round(thorough * share))
