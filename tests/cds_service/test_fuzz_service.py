"""Fuzzing the service and feedback endpoints with generated requests: whatever arrives, the answer is
never a 5xx and never a hang (each request must finish within the hypothesis deadline).

Three generators, 4,500 requests in all (``REQUESTS``) under the CI hypothesis profile, a tenth of
that by default (tests/hypothesis_budget.py):
- arbitrary JSON bodies (any shape, unicode, huge numbers, deep-ish nesting);
- valid order-sign requests (a CAR-T order with prefetch, and the CRD example) with one element
  replaced by arbitrary JSON or removed -- this reaches far deeper than random JSON does;
- real sandbox hook bodies (complete records, every scenario) with one to three values anywhere in
  them -- draft orders, prefetch resources, codings, dates -- replaced by a value of the wrong JSON
  type, a calendar edge, a huge number or unusual unicode (``hostile_values``); and real feedback
  bodies mutated the same way (issue 17: these reached code that formatted, hashed or parsed record
  values as if they had the FHIR type);
- forged client JWTs (random headers and claims, signed by the trusted key or not) with auth on.

The sandbox-body runs are short by default; ``-m slow`` adds a long run of each (``LONG_RUN``).
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service import create_app
from cds_service.settings import Settings
from sandbox.ehr_signer import EhrSigner
from tests.hypothesis_budget import examples

HOOK = "/cds-services/car-t-coverage"
BASE = "https://cds.payer.example"
EXAMPLES = Path(__file__).parents[1] / "examples"
ARBITRARY, MUTATED, TOKENS = 1500, 2000, 1000
SANDBOX_HOOKS, SANDBOX_FEEDBACK = 300, 150
REQUESTS = ARBITRARY + MUTATED + TOKENS + SANDBOX_HOOKS + SANDBOX_FEEDBACK
LONG_RUN = 10  # the slow runs send this many times the default number of sandbox-body requests
FUZZ = settings(deadline=timedelta(seconds=5), suppress_health_check=list(HealthCheck), derandomize=True)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=30)


def car_t_request() -> dict:
    """An order-sign request for a CAR-T product with a small prefetch (a realistic EHR shape)."""
    return {
        "hook": "order-sign",
        "hookInstance": "1b1b7c0e-6e41-4b5f-9d1e-3a1f4f0e9a11",
        "fhirServer": "https://ehr.hospital.example/fhir/R4",
        "fhirAuthorization": {"access_token": "opaque-ehr-token", "token_type": "Bearer", "expires_in": 300,
                              "scope": "patient/*.read", "subject": "cds-service"},
        "context": {
            "userId": "Practitioner/onc-1", "patientId": "pt-1",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{
                "fullUrl": "urn:uuid:9f1b2c3d-0000-4000-8000-000000000001",
                "resource": {
                    "resourceType": "MedicationRequest", "id": "car-t-1", "status": "draft", "intent": "order",
                    "subject": {"reference": "Patient/pt-1"},
                    "medicationCodeableConcept": {"coding": [
                        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "2536434"},
                        {"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "Q2055"}],
                        "text": "idecabtagene vicleucel"},
                    "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {
                        "value": 450, "unit": "million CAR+ T cells", "system": "http://unitsofmeasure.org",
                        "code": "10*6"}}]}],
                }}]},
        },
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "pt-1", "birthDate": "1959-03-02", "gender": "female"},
            "coverage": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
                "resourceType": "Coverage", "id": "cov-1", "status": "active",
                "beneficiary": {"reference": "Patient/pt-1"}, "payor": [{"display": "Example Health Plan"}]}}]},
            "conditions": None,
        },
    }


def crd_example() -> dict:
    return json.loads((EXAMPLES / "crd221-order-sign-request.json").read_text(encoding="utf-8"))


def paths(value, prefix=()):
    """Every path into a JSON tree (the root excluded)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        yield prefix + (key,)
        yield from paths(item, prefix + (key,))


BASES = [car_t_request(), crd_example()]
BASE_PATHS = [list(paths(b)) for b in BASES]


@st.composite
def mutated_requests(draw):
    index = draw(st.integers(0, len(BASES) - 1))
    body = copy.deepcopy(BASES[index])
    path = draw(st.sampled_from(BASE_PATHS[index]))
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return body


def assert_answered(response):
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert response.status_code in {200, 400, 401, 404, 412, 413, 415, 422}
    if response.status_code != 401:
        assert response.is_json


@pytest.fixture(scope="module")
def open_client():
    # loopback FHIR allowed: the sandbox bodies name a local FHIR server (every call to it is refused
    # by the test's HTTP mock, so a record missing from the prefetch is a retrieval failure)
    return create_app(Settings(auth_disabled=True, database_url="sqlite://", allow_loopback_fhir=True)).test_client()


@settings(FUZZ, max_examples=examples(ARBITRARY))
@given(body=json_values)
def test_arbitrary_json_bodies(open_client, body):
    assert_answered(open_client.post(HOOK, json=body))


@settings(FUZZ, max_examples=examples(MUTATED))
@given(body=mutated_requests())
def test_mutated_order_sign_requests(open_client, body):
    assert_answered(open_client.post(HOOK, json=body))


SANDBOX = Path(__file__).parents[2] / "sandbox" / "hooks"
SANDBOX_BODIES = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(SANDBOX.glob("*-prefetch.json"))
                  if not path.name.endswith("no-prefetch.json")]
FEEDBACK_BODIES = [json.loads((EXAMPLES / name).read_text(encoding="utf-8")) for name in (
    "cdshooks2-feedback-accepted.json", "cdshooks2-feedback-overridden.json",
    "cdshooks2-feedback-overridden-with-reason.json")]
CALENDAR_EDGES = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "9999-12-31", "0001-01-01",
                  "0000-00-00", "2026-02-29", "2024-02-30", "2026-13-01T00:00:00Z", "2026-11-24T24:00:00Z",
                  "2026-11-24T10:15:00+24:00", "99999-01-01", "2026", "2026-11", "-2026-01-01",
                  "2026-11-24T10:15:60Z", "2026-11-24T10:15:00.9999999999Z"]
HUGE_NUMBERS = [10**30, -(10**30), 2**63, -(2**63) - 1, 1e308, -1e308, 5e-324, 0, -0.0, 10**400]
UNICODE = ["\u202e\u0645\u0631\u062d\u0628\u0627", "\U0001f9ec\U0001f489", "\x00", "\ufeff", "Z\u0351\u0363\u0354",
           "\ud7ff\ue000", "ꙮ" * 200, " ", ""]
hostile_values = (st.sampled_from(CALENDAR_EDGES) | st.sampled_from(HUGE_NUMBERS) | st.sampled_from(UNICODE)
                  | st.sampled_from([None, True, False, [], {}, [None], [[]], {"": {}}, "Patient/"])
                  | json_values)


def _hostile_mutations(bases: list, base_paths: list):
    @st.composite
    def mutate(draw):
        index = draw(st.integers(0, len(bases) - 1))
        body = copy.deepcopy(bases[index])
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(base_paths[index]))
            parent = body
            try:
                for key in path[:-1]:
                    parent = parent[key]
                if isinstance(parent, dict) != isinstance(path[-1], str):
                    continue  # an earlier mutation replaced an ancestor
                parent[path[-1]] = copy.deepcopy(draw(hostile_values))  # never one object in two places
            except (KeyError, IndexError, TypeError):  # likewise
                continue
        return body

    return mutate()


sandbox_hooks = _hostile_mutations(SANDBOX_BODIES, [list(paths(b)) for b in SANDBOX_BODIES])
sandbox_feedback = _hostile_mutations(FEEDBACK_BODIES, [list(paths(b)) for b in FEEDBACK_BODIES])


@settings(FUZZ, max_examples=SANDBOX_HOOKS)
@given(body=sandbox_hooks)
def test_mutated_sandbox_hook_bodies(open_client, body):
    assert_answered(open_client.post(HOOK, json=body))


@settings(FUZZ, max_examples=SANDBOX_FEEDBACK)
@given(body=sandbox_feedback)
def test_mutated_feedback_bodies(open_client, body):
    assert_answered(open_client.post(HOOK + "/feedback", json=body))


@pytest.mark.slow
@settings(FUZZ, max_examples=SANDBOX_HOOKS * LONG_RUN)
@given(body=sandbox_hooks)
def test_mutated_sandbox_hook_bodies_long_run(open_client, body):
    assert_answered(open_client.post(HOOK, json=body))


@pytest.mark.slow
@settings(FUZZ, max_examples=SANDBOX_FEEDBACK * LONG_RUN)
@given(body=sandbox_feedback)
def test_mutated_feedback_bodies_long_run(open_client, body):
    assert_answered(open_client.post(HOOK + "/feedback", json=body))


SIGNER = EhrSigner.generate(iss="https://ehr.hospital.example", alg="ES384", kid="trusted")
STRANGER = EhrSigner.generate(iss="https://ehr.hospital.example", alg="ES384", kid="trusted")


@pytest.fixture(scope="module")
def secure_client(tmp_path_factory):
    clients = SIGNER.write_trusted_clients(tmp_path_factory.mktemp("fuzz") / "clients.yaml")
    return create_app(Settings(trusted_clients_file=clients, public_base_url=BASE, database_url="sqlite://")).test_client()


ES384 = jwt.get_algorithm_by_name("ES384")
claim_values = st.one_of(json_values, st.just(BASE + HOOK), st.just(SIGNER.iss), st.integers(0, 2**40))
headers = st.fixed_dictionaries({}, optional={
    "alg": st.sampled_from(["ES384", "RS384", "HS256", "none", "ES256", "PS384"]) | st.text(max_size=8),
    "kid": st.just("trusted") | json_values, "typ": st.just("JWT") | json_values,
    "jku": st.just("https://ehr.hospital.example/jwks") | json_values})
claims = st.fixed_dictionaries({}, optional={k: claim_values for k in ("iss", "aud", "exp", "iat", "nbf", "jti", "tenant")})


@st.composite
def forged_tokens(draw):
    kind = draw(st.sampled_from(["signed", "stranger", "garbage"]))
    if kind == "garbage":
        return draw(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=200))
    signer = SIGNER if kind == "signed" else STRANGER
    # Assembled by hand so that headers PyJWT would refuse to encode (a numeric kid, ...) are sent too.
    segments = [_b64(json.dumps(draw(headers)).encode()), _b64(json.dumps(draw(claims)).encode())]
    signing_input = ".".join(segments).encode()
    return ".".join(segments + [_b64(ES384.sign(signing_input, signer.private_key))])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@settings(FUZZ, max_examples=examples(TOKENS))
@given(token=forged_tokens())
def test_forged_tokens_never_pass_or_crash(secure_client, token):
    response = secure_client.post(HOOK, json=crd_example(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code != 500
    if response.status_code != 401:  # only a token that passes every check gets through
        decoded = jwt.decode(token, options={"verify_signature": False})
        assert decoded["iss"] == SIGNER.iss and decoded["aud"] in (BASE + HOOK, [BASE + HOOK])
        assert jwt.get_unverified_header(token)["kid"] == "trusted"
