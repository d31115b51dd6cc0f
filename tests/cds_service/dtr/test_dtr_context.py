"""The stored form of a decision context is plain JSON and loses nothing: a package prefilled from
the context read back is the package prefilled from the original."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from dtr_fixtures import stored_context

from cds_service.dtr.context import from_json, to_json
from fhir_mappings.facts import CellDose, Evidence, Observed
from policies.decision import Referral, ReferralPolicy
from tests.policies.policy_fakes import NOT_SHOWN, RETRIEVAL_FAILED, FakeFacts

EXPIRES = datetime(2026, 12, 24, 10, 0, tzinfo=timezone(timedelta(hours=-5)))


@pytest.mark.parametrize("facts", [
    FakeFacts(), FakeFacts(serum=NOT_SHOWN), FakeFacts(serum=RETRIEVAL_FAILED),
    FakeFacts(dose=Observed(CellDose(600.0), (Evidence("MedicationRequest/car-t-1", "doseQuantity", "600", "10*6"),))),
], ids=["meets", "not-shown", "retrieval-failed", "not-met"])
def test_the_stored_form_round_trips_through_json_text(facts):
    context = stored_context(EXPIRES, facts)
    stored = json.loads(json.dumps(to_json(context)))
    assert from_json(stored) == context
    assert stored["decisions"][0]["verdict"] == context.decisions[0].verdict.value


def test_a_referral_round_trips():
    context = stored_context(EXPIRES)
    referral = Referral("not multiple myeloma", (ReferralPolicy("commercial", "off-label", "CP.CPA.09"),))
    context = replace(context, decisions=(replace(context.decisions[0], referral=referral),))
    assert from_json(json.loads(json.dumps(to_json(context)))) == context
