"""Every sandbox hook request, answered with DEBUG logging on: the captured log holds no patient name,
birth date, identifier value, token or FHIR resource body.

Each request gets a recognisable identifier (MRN) on its Patient and an EHR access token, and is sent
with a signed client JWT, so all four kinds of secret are present in what the service handles. Requests
without prefetch make the service query the (absent) FHIR server, which exercises the failure paths
and their logging too.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from cds_service import create_app
from cds_service.log_safety import configure_logging
from cds_service.settings import Settings
from sandbox.ehr_signer import EhrSigner

HOOKS = sorted((Path(__file__).parents[2] / "sandbox" / "hooks").glob("*.json"))
BASE = "https://cds.payer.example"
HOOK = "/cds-services/car-t-coverage"


def with_secrets(request: dict, index: int) -> tuple[dict, list[str]]:
    """The request with an MRN and an access token added, and the strings that must never be logged."""
    secrets = [f"MRN-{index:04d}-77Q3", f"ehr-access-token-{index:04d}-x9Zt"]
    request["fhirAuthorization"] = {"access_token": secrets[1], "token_type": "Bearer", "expires_in": 300,
                                    "scope": "patient/*.read", "subject": "cart-cds"}
    patient = (request.get("prefetch") or {}).get("patient")
    if isinstance(patient, dict) and patient.get("resourceType") == "Patient":
        patient["identifier"] = [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": secrets[0]}]
        secrets += [n for name in patient.get("name", []) for n in name.get("given", []) if len(n) >= 3]
        if patient.get("birthDate"):
            secrets.append(patient["birthDate"])
    return request, secrets


@pytest.mark.skipif(not HOOKS, reason="sandbox hook requests not generated")
def test_no_patient_data_or_token_in_debug_logs(tmp_path):
    signer = EhrSigner.generate(iss="https://ehr.sandbox.example")
    settings = Settings(trusted_clients_file=signer.write_trusted_clients(tmp_path / "clients.yaml"),
                        public_base_url=BASE, database_url="sqlite://", allow_loopback_fhir=True, log_level="DEBUG")
    client = create_app(settings).test_client()
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream=stream)
    secrets: list[str] = []
    statuses = set()
    try:
        for index, path in enumerate(HOOKS):
            request, request_secrets = with_secrets(json.loads(path.read_text(encoding="utf-8")), index)
            token = signer.token(BASE + HOOK)
            secrets += request_secrets + [token, token.split(".")[2]]
            statuses.add(client.post(HOOK, json=request, headers={"Authorization": f"Bearer {token}"}).status_code)
    finally:
        logging.getLogger().removeHandler(handler)
    log = stream.getvalue()
    assert len(log.splitlines()) >= len(HOOKS)  # the service did log (one audit line per call at least)
    assert 200 in statuses
    leaked = sorted({s for s in secrets if s in log})
    assert leaked == []
    assert '"resourceType"' not in log and "resourceType" not in log
