"""Record variance (metamorphic tests): the decision holds on EHR data as it really varies (issue 14).

Every sandbox scenario's record is changed the ways real EHRs differ (``record_transforms``: codes in
another system or an OID, a drug as a statement instead of an administration, g/L instead of g/dL, an
amended result, Bundles paged or re-ordered, unrelated resources and other patients' resources beside
it; and changes that lose information: a preliminary or absent result, a partial date, a code reduced
to its text, an order in place of an administration, an unconfirmed diagnosis), delivered as a prefetch
or answered by a FHIR server, and evaluated in-process through the service's public path
(``offline_evaluation.evaluate_hook``, the request exactly as a hook call handles it). Against the
decision on the unchanged record:

- a meaning-preserving change never changes any order's verdict nor any criterion's status;
- an information-removing change never makes a verdict ``meets-policy`` nor a criterion ``met`` that
  was not already.

The relations compare the engine with itself, so they hold whatever the oracle says; the sandbox
expectations (tests/scenarios/test_sandbox_scenarios.py) say whether the decision is right.

``test_one_transformation`` applies each transformation to all it can change in each scenario;
``test_combined_transformations`` lets hypothesis draw a scenario, a few transformations, which
resources each changes, and the delivery. ``test_combined_transformations_long`` is the same with many
more examples, marked ``slow`` and run only when selected: ``python -m pytest -m slow
tests/scenarios/test_record_variance.py``.

A case the service gets wrong while its fix is in progress goes in ``KNOWN`` (one place), as a strict
xfail: when the fix lands it passes, the xfail turns red, and the entry goes. Variations the hypothesis
runs found are kept as explicit examples in ``FOUND`` (by resource id), run on every default run.
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import urlsplit

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.offline_evaluation import evaluate_hook
from cds_service.settings import Settings
from fhir_mappings.data_requirements import data_requirements
from sandbox.expectations import decisions
from tests.scenarios.record_transforms import (
    BASE,
    BY_NAME,
    PRESERVING,
    REMOVING,
    TRANSFORMS,
    FhirServerMock,
    Record,
    hook_body,
    kind_of,
    load_record,
    scenario_names,
    transformed,
)
from tests.scenarios.test_sandbox_scenarios import KNOWN_WRONG

AS_OF = date(2026, 11, 24)
# The mock EHR's FHIR server is an open test server: the recorded hooks send no fhirAuthorization.
SETTINGS = Settings(auth_disabled=True, database_url="sqlite://", allow_loopback_fhir=True,
                    fhir_open_hosts=(urlsplit(BASE).hostname,))
SCENARIOS = scenario_names()
PARTIAL_PREFETCH = frozenset({"patient", "coverage", "user", "conditions"})
DELIVERIES = ("prefetch", "no-prefetch", "partial-prefetch")



# (scenario, transformation) -> why it fails today: strict xfails, in this one place. When a fix lands the
# case passes, the xfail turns red, and its entry goes.
KNOWN: dict[tuple[str, str], str] = {}

# Variations hypothesis found, by the ids of the resources changed: (scenario, transformation, ids) -> what
# went wrong before; ``test_found_variation`` runs each.
FIRST_DOSE_UNKNOWN = ("the first administration of an infused drug recorded with status 'unknown': leaving it "
                      "out made the drug look added later and start a new line (I.A.5 met on a record that says "
                      "less); lines_of_therapy reads the record with and without it")
FOUND: dict[tuple[str, str, tuple[str, ...]], str] = {
    ("kite772-two-prior-lines-only", "medication-status-unknown", ("kite772-two-prior-lines-only-ma-3",)):
        FIRST_DOSE_UNKNOWN,
    ("induction-asct-maintenance-counts-one-line", "medication-status-unknown",
     ("induction-asct-maintenance-counts-one-line-ma-1",)): FIRST_DOSE_UNKNOWN,
    ("asct-coded-in-icd10-pcs-one-line", "medication-status-unknown", ("asct-coded-in-icd10-pcs-one-line-ma-1",)):
        FIRST_DOSE_UNKNOWN,
    ("kite772-lymphodepletion-before-prior-car-t", "medication-status-unknown",
     ("kite772-lymphodepletion-before-prior-car-t-ma-1",)): FIRST_DOSE_UNKNOWN,
}
LEFT_OUT_OF_DRAWS = set(KNOWN)

Decision = tuple[str, dict[str, str]]


@pytest.fixture
def server(http_mock: responses.RequestsMock) -> FhirServerMock:
    mock = FhirServerMock()
    http_mock.add_callback(responses.GET, re.compile(re.escape(BASE) + r"([/?].*)?$"), callback=mock)
    return mock


def evaluate(record: Record, server: FhirServerMock, delivery: str = "prefetch", page_size: int = 200) -> dict[str, Decision]:
    """order -> (verdict, criterion id -> status), as the service answers for ``record``."""
    server.record, server.page_size = record, page_size
    keys = {"prefetch": None, "no-prefetch": frozenset(), "partial-prefetch": PARTIAL_PREFETCH}[delivery]
    response = evaluate_hook(hook_body(record, keys), settings=SETTINGS, as_of=AS_OF)
    return {order: (d["verdict"], {c["id"]: c["status"] for c in d["criteria"]})
            for order, d in decisions(response).items()}


_BASELINE: dict[str, dict[str, Decision]] = {}


def baseline(scenario: str, server: FhirServerMock) -> dict[str, Decision]:
    if scenario not in _BASELINE:
        _BASELINE[scenario] = evaluate(load_record(scenario), server)
    return _BASELINE[scenario]


def violations(kind: str, before: dict[str, Decision], after: dict[str, Decision]) -> list[str]:
    """What breaks the metamorphic relation of ``kind`` (empty: it holds)."""
    problems = []
    for order, (verdict, criteria) in before.items():
        got_verdict, got = after.get(order, (None, {}))
        if kind == PRESERVING:
            if got_verdict != verdict:
                problems.append(f"{order}: verdict {verdict} -> {got_verdict}")
            problems += [f"{order}: {cid} {status} -> {got.get(cid)}"
                         for cid, status in criteria.items() if got.get(cid) != status]
        else:
            if got_verdict == "meets-policy" and verdict != "meets-policy":
                problems.append(f"{order}: verdict {verdict} -> meets-policy")
            problems += [f"{order}: {cid} {criteria.get(cid)} -> met"
                         for cid, status in got.items() if status == "met" and criteria.get(cid) != "met"]
    return problems


def _cases():
    for scenario in SCENARIOS:
        record = load_record(scenario)
        names = [t.name for t in TRANSFORMS if t.applicable(record)] + ["no-prefetch-paged", "partial-prefetch"]
        for name in names:
            reason = KNOWN.get((scenario, name))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(scenario, name, id=f"{scenario}:{name}", marks=marks)


@pytest.mark.parametrize(("scenario", "name"), list(_cases()))
def test_one_transformation(scenario, name, server):
    before = baseline(scenario, server)
    record = load_record(scenario)
    if name == "no-prefetch-paged":
        after, kind = evaluate(record, server, "no-prefetch", page_size=2), PRESERVING
    elif name == "partial-prefetch":
        after, kind = evaluate(record, server, "partial-prefetch"), PRESERVING
    else:
        after, kind = evaluate(transformed(record, [(name, None)]), server), BY_NAME[name].kind

    assert violations(kind, before, after) == []


@pytest.mark.parametrize(("scenario", "name", "ids"), [
    pytest.param(*case, id=f"{case[0]}:{case[1]}:{','.join(case[2])}") for case in FOUND])
def test_found_variation(scenario, name, ids, server):
    record = load_record(scenario)
    transform = BY_NAME[name]
    chosen = [i for i in transform.targets(record) if transform.of(record)[i].get("id") in ids]
    assert len(chosen) == len(ids)

    after = evaluate(transformed(record, [(name, chosen)]), server)

    assert violations(transform.kind, baseline(scenario, server), after) == []


@st.composite
def variations(draw):
    """(scenario, [(transformation, chosen targets)], delivery, page size, seed): targets are drawn on the
    record as the earlier steps left it, so the indexes stay meaningful. Scenarios the service decides
    wrongly today (``KNOWN_WRONG``) are left out: a wrong decision is no baseline for a relation."""
    scenario = draw(st.sampled_from([s for s in SCENARIOS if s not in KNOWN_WRONG]))
    record = load_record(scenario)
    seed = draw(st.integers(0, 2**16))
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        usable = [t for t in TRANSFORMS if t.applicable(record) and (scenario, t.name) not in LEFT_OUT_OF_DRAWS]
        transform = draw(st.sampled_from(usable))
        chosen = None
        if transform.targets is not None:
            targets = transform.targets(record)
            chosen = draw(st.lists(st.sampled_from(targets), min_size=1, max_size=len(targets), unique=True))
        steps.append((transform.name, chosen))
        record = transformed(record, [(transform.name, chosen)], seed)
    delivery = draw(st.sampled_from(DELIVERIES))
    return scenario, steps, delivery, draw(st.integers(1, 5)), seed


def _check_variation(variation, server: FhirServerMock) -> None:
    scenario, steps, delivery, page_size, seed = variation
    before = baseline(scenario, server)
    record = load_record(scenario)
    for step in steps:
        record = transformed(record, [step], seed)
    after = evaluate(record, server, delivery, page_size)
    kind = kind_of(steps)
    assert violations(kind, before, after) == [], f"{scenario} {steps} ({kind}, {delivery})"


SHORT = settings(max_examples=40, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SHORT
@given(variation=variations())
def test_combined_transformations(variation, server):
    _check_variation(variation, server)


@pytest.mark.slow
@pytest.mark.skipif("'slow' not in config.getoption('markexpr')", reason="long run: select it with -m slow")
@settings(SHORT, max_examples=2000, derandomize=False)
@given(variation=variations())
def test_combined_transformations_long(variation, server):
    _check_variation(variation, server)


def test_transformations_are_classified():
    """Every transformation says which relation it must keep, and both kinds are exercised."""
    assert {t.kind for t in TRANSFORMS} == {PRESERVING, REMOVING}
    assert len(BY_NAME) == len(TRANSFORMS)
    assert {r.key for r in data_requirements()} >= PARTIAL_PREFETCH
