"""CDS Hooks 2.0 feedback (``POST /cds-services/{id}/feedback``): validation and idempotent intake.

Each item names a card by its ``uuid``, an ``outcome`` (``accepted`` | ``overridden``), the accepted
suggestion ids when accepted (cds-fb-2), an optional ``overrideReason`` with a ``reason`` Coding and/or a
``userComment`` (cds-fb-3), and an RFC 3339 ``outcomeTimestamp``. EHRs retry and batch, so repeats are
expected: ``FeedbackLog`` remembers recently seen items (bounded, per process) and reports only new ones;
only those reach the audit store, and the route answers ``200 {}`` either way.

``userComment`` is free text a clinician typed and may name the patient or other PHI. Whether it is kept
is decided here, once, when an item is parsed: only when ``CART_CDS_AUDIT_FEEDBACK_COMMENTS`` is true
(``keep_comments``); otherwise the item records only that a comment was given. The audit stores
``FeedbackItem.as_json()``, so a comment that was not kept cannot reach it.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cds_service.errors import HookRequestError
from cds_service.hook_request import json_path, validate_json

# RFC 3339 section 5.6 date-time: full date, "T", time with optional fraction, and a Z or numeric offset.
FEEDBACK_LOG_KEY = "cart_cds.feedback_log"  # app.extensions key of the app's FeedbackLog
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


@dataclass(frozen=True)
class FeedbackItem:
    card: str
    outcome: str  # "accepted" | "overridden"
    outcome_timestamp: datetime  # timezone-aware, normalised to UTC
    accepted_suggestions: tuple[str, ...] = ()
    override_reason_code: tuple[str, str] | None = None  # (system, code)
    has_user_comment: bool = False
    user_comment: str | None = None  # the free text, only when comments are kept (see module doc)

    @property
    def key(self) -> tuple[str, str, datetime]:
        return self.card, self.outcome, self.outcome_timestamp

    def as_json(self) -> dict:
        """The item as the audit trail stores it (CDS Hooks feedback names; the comment only if kept)."""
        out: dict[str, Any] = {"card": self.card, "outcome": self.outcome,
                               "outcomeTimestamp": self.outcome_timestamp.isoformat().replace("+00:00", "Z")}
        if self.accepted_suggestions:
            out["acceptedSuggestions"] = [{"id": s} for s in self.accepted_suggestions]
        reason: dict[str, Any] = {}
        if self.override_reason_code:
            reason["reason"] = {"system": self.override_reason_code[0], "code": self.override_reason_code[1]}
        if self.user_comment is not None:
            reason["userComment"] = self.user_comment
        if reason:
            out["overrideReason"] = reason
        return out


def parse_feedback(data: Any, *, keep_comments: bool = False) -> tuple[FeedbackItem, ...]:
    """Validate a feedback body already decoded from JSON (the route gets it from the input limits, which
    parsed it once); raises ``HookRequestError`` naming the path of the first problem. ``keep_comments``
    keeps the free-text ``userComment`` (see module doc)."""
    validate_json("feedback", data)
    return tuple(_item(raw, index, keep_comments) for index, raw in enumerate(data["feedback"]))


def _item(raw: dict, index: int, keep_comments: bool) -> FeedbackItem:
    path = ("feedback", index)
    timestamp = raw["outcomeTimestamp"]
    when = _rfc3339(timestamp)
    if when is None:
        raise HookRequestError("must be an RFC 3339 date-time such as 2026-11-24T10:15:00Z",
                               json_path(path + ("outcomeTimestamp",)))
    accepted = tuple(s["id"] for s in raw.get("acceptedSuggestions", ()))
    if raw["outcome"] == "accepted" and not accepted:
        raise HookRequestError("is required when outcome is accepted", json_path(path + ("acceptedSuggestions",)))
    reason = raw.get("overrideReason") or {}
    coding = reason.get("reason")
    comment = reason.get("userComment") or None
    return FeedbackItem(
        card=raw["card"], outcome=raw["outcome"], outcome_timestamp=when, accepted_suggestions=accepted,
        override_reason_code=(coding["system"], coding["code"]) if coding else None,
        has_user_comment=comment is not None, user_comment=comment if keep_comments else None)


def _rfc3339(text: str) -> datetime | None:
    if not _RFC3339.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):  # month 13; or 9999-12-31T23:59:59-23:59, past the end of time in UTC
        return None


class FeedbackLog:
    """Recently seen feedback items of this process, so a repeated submission is recognised.
    Bounded: the oldest keys are forgotten first. Thread-safe (gunicorn runs threaded workers)."""

    def __init__(self, capacity: int = 10_000):
        self._seen: OrderedDict[tuple, None] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def record(self, service_id: str, items: tuple[FeedbackItem, ...]) -> tuple[FeedbackItem, ...]:
        """Remember the items and return those not seen before (in order, each once)."""
        new = []
        with self._lock:
            for item in items:
                key = (service_id, *item.key)
                if key in self._seen:
                    self._seen.move_to_end(key)
                    continue
                self._seen[key] = None
                new.append(item)
                if len(self._seen) > self._capacity:
                    self._seen.popitem(last=False)
        return tuple(new)
