"""Smoke test of the benchmark harness on a tiny configuration: it runs, and RESULTS.md holds the table.

Not a timing test: the figures of a 20-call run mean nothing; what is checked is that every measured case
produced a row with its verdicts, and that the profile was written.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from sandbox.bench.__main__ import run
from sandbox.bench.config import QUICK
from sandbox.bench.records import build_hook, grown_hook

TINY = replace(QUICK, calls=20, large_calls=1, profile_calls=2, fallback_calls=1, hanging_calls=1,
               fhir_delay_seconds=0.01, fhir_deadline_seconds=0.5)


def test_generated_records_have_the_issue_sizes():
    typical = build_hook(observations=150, medications=100)["prefetch"]
    assert len(typical["observations"]["entry"]) == 150
    medications = sum(len(typical[k]["entry"]) for k in
                      ("medicationAdministrations", "medicationRequests", "medicationStatements"))
    assert medications == 100
    assert len(typical["conditions"]["entry"]) == 20
    assert all("next" not in [link["relation"] for link in bundle.get("link", ())]
               for bundle in typical.values() if bundle.get("resourceType") == "Bundle")


def test_grown_records_grow_the_series_and_doses_the_facts_read():
    base, grown = grown_hook(0)["prefetch"], grown_hook(1000)["prefetch"]
    total = sum(len(v.get("entry", ())) if v and v.get("resourceType") == "Bundle" else 1 for v in grown.values() if v)
    assert 990 <= total <= 1000
    loinc = {e["resource"]["code"]["coding"][0]["code"] for e in base["observations"]["entry"]}
    added = grown["observations"]["entry"][len(base["observations"]["entry"]):]
    assert len(added) > 500 and {e["resource"]["code"]["coding"][0]["code"] for e in added} == loinc
    drugs = {e["resource"]["medicationCodeableConcept"]["text"] for e in base["medicationAdministrations"]["entry"]}
    doses = grown["medicationAdministrations"]["entry"][len(base["medicationAdministrations"]["entry"]):]
    assert len(doses) > 100 and {e["resource"]["medicationCodeableConcept"]["text"] for e in doses} <= drugs


@pytest.mark.loopback_http
def test_tiny_in_process_cost_sections_make_no_network_call(tmp_path):
    path = run(TINY, tmp_path, ("cpu", "grown"), echo=lambda line: None)
    text = path.read_text(encoding="utf-8")
    assert "| in-process hooks make no network call (issue 18) | 0 connections to their fhirServer | 0 connections | met |" in text
    assert "| typical | 278 |" in text and "sandbox median: " in text and "machine load" in text
    assert "Log-log slope of hook CPU over resources: " in text
    assert len(re.findall(r"^\| grown \d+ \|", text, re.MULTILINE)) == len(TINY.grown_sizes)


@pytest.mark.loopback_http
def test_tiny_run_writes_the_results_table(tmp_path):
    lines: list[str] = []
    path = run(TINY, tmp_path, ("inprocess", "profile", "fallback", "hanging"), echo=lines.append)
    text = path.read_text(encoding="utf-8")
    assert "Quick smoke run" in text and "- CPUs: " in text
    for case in ("typical", "large", "five-orders"):
        rows = [line for line in text.splitlines() if line.startswith(f"| {case} | ")]
        assert len(rows) == 2  # the request sizes and the service times
        assert rows[1].endswith("meets-policy |") or rows[1].endswith("meets-policy,meets-policy |")
    assert "| typical record, in-process |" in text
    assert "| hanging FHIR server |" in text and "| fallback, 200 ms per query |" in text
    assert "cumulative" in (tmp_path / "profile-typical.txt").read_text(encoding="utf-8")
