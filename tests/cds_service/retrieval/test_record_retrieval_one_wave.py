"""Fallback retrieval of a no-prefetch hook is one parallel wave on pooled keep-alive connections.

Against the sandbox replay server over real loopback HTTP (the server answers from the sandbox patients,
honouring ``_count``): with the default limits every query of a typical hook is in flight at the same
time, each search is answered in one page, and a second hook reuses the first one's connections."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from cds_service.retrieval.fhir_client import new_session
from cds_service.retrieval.record_retrieval import RetrievalLimits, retrieve_record
from fhir_mappings.facts import RetrievalState
from sandbox.bench.fhir_fakes import delayed_replay
from sandbox.replay_server import base_url, make_server

pytestmark = pytest.mark.loopback_http

HOOK = Path(__file__).parents[3] / "sandbox" / "hooks" / "abecma-meets-all-criteria-no-prefetch.json"
# Patient, Coverage, Practitioner (context.userId), Condition, Observation, MedicationStatement,
# MedicationAdministration, MedicationRequest, MedicationDispense, Procedure, ServiceRequest, and the
# requester's PractitionerRole search.
FIRST_WAVE = 12


def hook_retrieval(base: str, session, limits: RetrievalLimits = RetrievalLimits()):
    hook = json.loads(HOOK.read_text(encoding="utf-8"))
    context = hook["context"]
    return retrieve_record(
        fhir_server=base,
        access_token=None,
        prefetch=None,
        patient_id=context["patientId"],
        user_id=context["userId"],
        draft_orders=[e["resource"] for e in context["draftOrders"]["entry"]],
        limits=limits,
        session=session,
    )


def test_default_limits_run_every_query_of_a_typical_hook_at_once():
    """Each request waits at a barrier until all FIRST_WAVE requests have arrived: were any query held
    back for a second wave (too few workers, a page, a dependent read), the barrier would break."""
    barrier = threading.Barrier(FIRST_WAVE, timeout=10)
    paths: list[str] = []
    server = make_server("127.0.0.1", 0, recorded_dir=None)
    plain = server.RequestHandlerClass

    def do_get(handler) -> None:
        paths.append(handler.path.split("?", 1)[0])
        barrier.wait()
        plain.do_GET(handler)

    server.RequestHandlerClass = type("BarrierHandler", (plain,), {"do_GET": do_get})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with new_session(RetrievalLimits().max_workers) as session:
            record = hook_retrieval(base_url(server), session, RetrievalLimits(deadline_seconds=15))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert not barrier.broken
    assert len(paths) == FIRST_WAVE and "/fhir/PractitionerRole" in paths  # no next page, no second wave
    assert all(o.state is RetrievalState.COMPLETE for o in record.outcomes.values())
    assert sum(r["resourceType"] == "Observation" for r in record.resources) == 10  # all in the one page


def test_pooled_connections_are_kept_alive_across_hooks():
    # Answers 0.1 s late, so each hook has all its queries in flight at once (one connection each).
    with delayed_replay(0.1) as (base, counter), new_session(RetrievalLimits().max_workers) as session:
        first = hook_retrieval(base, session)
        assert counter.connections == FIRST_WAVE
        second = hook_retrieval(base, session)
        assert counter.count == 2 * FIRST_WAVE
        assert counter.connections == FIRST_WAVE  # the second hook opened no new connection
    assert first.outcomes == second.outcomes
    assert all(o.state is RetrievalState.COMPLETE for o in second.outcomes.values())
