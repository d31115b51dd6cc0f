"""CDS Hooks access rules: cds-r-2 (fhirAuthorization.patient is the hook's patient) and "query fhirServer
only with the fhirAuthorization the client grants" (CH2 §FHIR Resource Access), on the CRD 2.2.1 example
request and the sandbox's no-prefetch hook."""

from __future__ import annotations

from datetime import date

import responses

from cds_service import create_app
from tests.cds_service.conftest import HOOK_URL, protocol_settings
from tests.cds_service.test_order_sign_end_to_end import SANDBOX_FHIR, sandbox_hook

NO_PREFETCH = "abecma-meets-all-criteria-no-prefetch"


def diagnostics(response) -> str:
    return response.get_json()["issue"][0]["diagnostics"]


def test_cds_r_2_a_token_for_another_patient_is_a_400_naming_the_field(client, order_sign_request):
    order_sign_request["fhirAuthorization"]["patient"] = "someone-else"

    response = client.post(HOOK_URL, json=order_sign_request)

    assert response.status_code == 400
    assert diagnostics(response).startswith("fhirAuthorization.patient:")


def test_cds_r_2_a_token_for_the_hooks_patient_is_accepted(client, order_sign_request):
    order_sign_request["fhirAuthorization"]["patient"] = order_sign_request["context"]["patientId"]

    assert client.post(HOOK_URL, json=order_sign_request).status_code == 200


def test_without_fhir_authorization_a_production_service_does_not_query_the_fhir_server(http_mock):
    """Not an open test host, not development: the prefetch alone decides; with none, 412."""
    app = create_app(protocol_settings(allow_loopback_fhir=True, fhir_open_hosts=()), as_of=date(2026, 11, 24))

    response = app.test_client().post(HOOK_URL, json=sandbox_hook(NO_PREFETCH))

    assert response.status_code == 412
    assert len(http_mock.calls) == 0


def test_an_open_test_host_or_development_is_queried_without_a_token(http_mock):
    http_mock.add(responses.GET, f"{SANDBOX_FHIR}/Patient/abecma-meets-all-criteria-pt", status=503)
    for settings in (protocol_settings(allow_loopback_fhir=True, fhir_open_hosts=("127.0.0.1:8090",)),
                     protocol_settings(allow_loopback_fhir=True, fhir_open_hosts=(), env="development")):
        calls = len(http_mock.calls)
        create_app(settings, as_of=date(2026, 11, 24)).test_client().post(HOOK_URL, json=sandbox_hook(NO_PREFETCH))
        assert len(http_mock.calls) > calls  # the FHIR server was asked


def test_with_fhir_authorization_the_fhir_server_is_queried_with_the_token(http_mock):
    hook = sandbox_hook(NO_PREFETCH)
    hook["fhirAuthorization"] = {"access_token": "opaque-token", "token_type": "Bearer", "expires_in": 30,
                                 "scope": "patient/*.read", "subject": "cart-cds",
                                 "patient": hook["context"]["patientId"]}
    app = create_app(protocol_settings(allow_loopback_fhir=True, fhir_open_hosts=()), as_of=date(2026, 11, 24))

    app.test_client().post(HOOK_URL, json=hook)

    assert http_mock.calls and all(c.request.headers["Authorization"] == "Bearer opaque-token"
                                   for c in http_mock.calls)
