"""A policy as a pharmacist reads it, and when each loaded version is in force (``cart-cds policy``).

Text only, from the loaded ``Policy`` values: the criteria tree in the policy's words, how children
combine, the check the service runs for a criterion with its parameters (and the first sentence of that
check's docstring, which says what it looks for), and what is asked for when the record does not show it.
"""

from __future__ import annotations

import textwrap
from datetime import date, timedelta

from policies.checks import get_check
from policies.model import Criterion, Policy


def in_force_periods(policies: tuple[Policy, ...]) -> list[tuple[Policy, date, date | None]]:
    """(version, first day, last day or None) of every loaded version, by policy id then date: a
    version's period ends at its own ``until`` or the day before a later version starts."""
    out = []
    ordered = sorted(policies, key=lambda p: (p.id, p.in_force_from))
    for policy, following in zip(ordered, [*ordered[1:], None], strict=True):
        ends = [d for d in (policy.in_force_until,
                            following.in_force_from - timedelta(days=1) if following and following.id == policy.id else None)
                if d is not None]
        out.append((policy, policy.in_force_from, min(ends) if ends else None))
    return out


_LOGIC = {"all": "all of", "any": "any of"}
_INDENT = "    "


def _check_summary(name: str) -> str:
    """The first sentence of the check's docstring: what it looks for in the record."""
    doc = (get_check(name).function.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split()).split(". ")[0].rstrip(".") if doc else ""


def _param_text(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def criterion_lines(node: Criterion, depth: int = 0) -> list[str]:
    """One criterion and its children, as a pharmacist reads them: the policy's words, how the children
    combine, the check the service runs with its parameters, and what is asked for when not shown."""
    pad = _INDENT * depth
    combine = f"  [{_LOGIC.get(node.logic, f'{node.n} of')}]" if node.logic else ""
    lines = textwrap.wrap(f"{node.id}  {node.text}{combine}", width=110, initial_indent=pad,
                          subsequent_indent=pad + _INDENT)
    detail = pad + _INDENT
    if node.check:
        summary = _check_summary(node.check)
        lines.append(f"{detail}check: {node.check}" + (f" -- {summary}" if summary else ""))
        lines += [f"{detail}  {key} = {_param_text(value)}" for key, value in node.params.items()]
    if node.documentation:
        lines += textwrap.wrap(f"when not shown, ask for: {node.documentation}", width=110,
                               initial_indent=detail, subsequent_indent=detail + _INDENT)
    for child in node.children:
        lines += criterion_lines(child, depth + 1)
    return lines


def describe(policy: Policy, periods: list[tuple[Policy, date, date | None]]) -> str:
    versions = [f"{p.version} ({first} .. {last or 'superseded'})" for p, first, last in periods if p.id == policy.id]
    lines = [
        f"{policy.id}: {policy.title}",
        f"Version {policy.version}, in force from {policy.in_force_from.isoformat()}"
        + (f" until {policy.in_force_until.isoformat()}" if policy.in_force_until else "") + f" ({policy.source})",
        f"All versions loaded: {'; '.join(versions)}",
        f"Product: {policy.product.display}; lines of business: {', '.join(policy.lines_of_business)}",
        "",
        "Required criteria (every one must be met):",
    ]
    for root in policy.required:
        lines += criterion_lines(root, 1)
    lines += ["", "Tocilizumab allowance:", *criterion_lines(policy.tocilizumab, 1)]
    terms = policy.approval
    lines += ["", f"Approval: {terms.duration_months} months, {terms.doses} dose(s); PDAC review "
                  f"{'required' if terms.pdac_review_required else 'not required'}"]
    return "\n".join(lines)
