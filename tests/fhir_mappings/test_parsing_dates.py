"""FHIR dates as spans of days, and the three-valued window helpers every date comparison uses."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_mappings.parsing import DateSpan, follows_within, on_or_before, parse_date, within

AS_OF = date(2026, 12, 10)


@pytest.mark.parametrize("raw, earliest, latest", [
    ("2026-11-05", date(2026, 11, 5), date(2026, 11, 5)),
    ("2026-11-05T23:30:00-05:00", date(2026, 11, 5), date(2026, 11, 5)),
    ("2026-11", date(2026, 11, 1), date(2026, 11, 30)),
    ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
    ("2026", date(2026, 1, 1), date(2026, 12, 31)),
])
def test_parse_date_gives_every_day_the_value_may_denote(raw, earliest, latest):
    assert parse_date(raw) == DateSpan(earliest, latest)


@pytest.mark.parametrize("raw", [None, "", "yesterday", "2026-13", "2026-02-30", 20261105])
def test_parse_date_refuses_what_is_not_a_date(raw):
    assert parse_date(raw) is None


@pytest.mark.parametrize("raw, days, expected", [
    ("2026-11-10", 30, True),      # exactly 30 days back counts
    ("2026-11-09", 30, False),
    ("2026-12-10", 30, True),
    ("2026-12-11", 30, False),     # after as_of
    ("2026-12", 30, None),         # 12-01 .. 12-31: partly after as_of
    ("2026-11", 30, None),         # 11-01 .. 11-30: partly more than 30 days back
    ("2026-11", 60, True),         # the whole month is within 60 days
    ("2026-09", 30, False),        # the whole month is outside
    ("2026", 30, None),
    ("2025", 30, False),
])
def test_within_judges_the_whole_span(raw, days, expected):
    assert within(parse_date(raw), AS_OF, days) is expected


@pytest.mark.parametrize("raw, expected", [
    ("2026-12-10", True), ("2026-12-11", False), ("2026-11", True), ("2026-12", None), ("2027", False),
])
def test_on_or_before(raw, expected):
    assert on_or_before(parse_date(raw), AS_OF) is expected


@pytest.mark.parametrize("later, earlier, expected", [
    ("2026-11-20", "2026-10-01", True),    # 50 days after
    ("2026-12-20", "2026-10-01", False),   # 80 days after
    ("2026-09-20", "2026-10-01", False),   # before the last dose
    ("2026-10-01", "2026-10-01", True),    # the same day
    ("2026-11", "2026-10-01", True),       # 31 .. 60 days after
    ("2026-12", "2026-10-01", False),      # 61 .. 91 days after
    ("2026-11", "2026-09-15", None),       # 47 .. 76 days: straddles 60
    ("2026-11-20", "2026-10", True),       # 20 .. 50 days after
    ("2026-10-15", "2026-10", None),       # the last dose may be after the assessment
])
def test_follows_within(later, earlier, expected):
    assert follows_within(parse_date(later), parse_date(earlier), 60) is expected

