"""Record retrieval: prefetch first, fallback queries in parallel under one deadline, an outcome per
resource type, 412 when nothing can be had, and the draft orders' references."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from cds_service.retrieval.fhir_client import Deadline
from cds_service.retrieval.record_retrieval import (
    RecordUnavailable,
    RetrievalLimits,
    resolve_order_references,
    retrieve_record,
)
from fhir_mappings.data_requirements import observation_codes
from fhir_mappings.facts import RetrievalOutcome, RetrievalState

EHR = "https://ehr.example.org/fhir"
TOKEN = "ya29.a0-top-secret-ehr-token"
PID = "1288992"
USER = "Practitioner/abc"
SEARCH_KEYS = {
    "coverage": "Coverage",
    "conditions": "Condition",
    "observations": "Observation",
    "medicationStatements": "MedicationStatement",
    "medicationAdministrations": "MedicationAdministration",
    "medicationRequests": "MedicationRequest",
    "medicationDispenses": "MedicationDispense",
    "procedures": "Procedure",
    "serviceRequests": "ServiceRequest",
    "userRoles": "PractitionerRole",
}
PATIENT = {"resourceType": "Patient", "id": PID, "birthDate": "1959-03-02", "gender": "female"}
PRACTITIONER = {"resourceType": "Practitioner", "id": "abc", "name": [{"family": "Osler", "given": ["Wil"]}]}
COVERAGE = {"resourceType": "Coverage", "id": "cov1", "status": "active", "beneficiary": {"reference": f"Patient/{PID}"}}
ROLE = {
    "resourceType": "PractitionerRole",
    "id": "role1",
    "practitioner": {"reference": "Practitioner/abc"},
    "specialty": [{"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "207RH0003X"}]}],
}
COMPLETE = RetrievalOutcome(RetrievalState.COMPLETE)


def resource(resource_type, n):
    return {"resourceType": resource_type, "id": f"{resource_type.lower()}-{n}", "subject": {"reference": f"Patient/{PID}"}}


def searchset(resources, next_url=None):
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": links,
        "entry": [{"fullUrl": f"{EHR}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in resources],
    }


def full_prefetch():
    prefetch = {"patient": PATIENT, "user": PRACTITIONER}
    for key, resource_type in SEARCH_KEYS.items():
        prefetch[key] = searchset([resource(resource_type, 1)])
    return prefetch


def retrieve(prefetch, fhir_server=EHR, token=TOKEN, **kwargs):
    return retrieve_record(
        fhir_server=fhir_server, access_token=token, prefetch=prefetch, patient_id=PID, user_id=USER, **kwargs
    )


def serve_searches(http_mock, keys, per_type=1):
    for key in keys:
        resource_type = SEARCH_KEYS[key]
        http_mock.get(f"{EHR}/{resource_type}", json=searchset([resource(resource_type, n) for n in range(per_type)]))


def test_full_prefetch_needs_no_query(http_mock):
    record = retrieve(full_prefetch())
    assert not http_mock.calls
    assert set(record.outcomes) == {"Patient", "Practitioner", *SEARCH_KEYS.values()}
    assert all(o == COMPLETE for o in record.outcomes.values())
    assert len(record.resources) == 2 + len(SEARCH_KEYS) and record.fetched_any is False and record.queried == ()


def test_full_prefetch_works_without_fhir_server():
    record = retrieve(full_prefetch(), fhir_server=None, token=None)
    assert all(o == COMPLETE for o in record.outcomes.values())


def test_null_prefetch_is_no_data_and_never_queried(http_mock):
    record = retrieve({key: None for key in ["patient", "user", *SEARCH_KEYS]})
    assert not http_mock.calls and record.resources == ()
    assert all(o == COMPLETE for o in record.outcomes.values())


def test_no_prefetch_and_no_fhir_server_is_unavailable():
    with pytest.raises(RecordUnavailable) as caught:
        retrieve(None, fhir_server=None)
    assert caught.value.reason == "no-data-source"
    with pytest.raises(RecordUnavailable):  # unusable values count as nothing
        retrieve({"patient": "<html>error</html>", "conditions": {"resourceType": "OperationOutcome"}}, fhir_server=None)


def test_partial_prefetch_without_server_fails_only_the_missing_types():
    record = retrieve({"patient": PATIENT, "conditions": None}, fhir_server=None, token=None)
    assert record.outcomes["Patient"] == COMPLETE and record.outcomes["Condition"] == COMPLETE
    assert record.outcomes["Observation"] == RetrievalOutcome(RetrievalState.FAILED, "no-fhir-server")


def test_partial_prefetch_plus_fallback_queries(http_mock):
    prefetch = {
        "patient": PATIENT,
        "coverage": searchset([COVERAGE]),
        "conditions": None,
        "observations": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]},
    }
    http_mock.get(f"{EHR}/Practitioner/abc", json=PRACTITIONER)
    queried_keys = [k for k in SEARCH_KEYS if k not in ("coverage", "conditions")]
    serve_searches(http_mock, queried_keys, per_type=2)
    record = retrieve(prefetch)

    queried = {urlsplit(c.request.url).path.rsplit("/", 1)[-1]: parse_qs(urlsplit(c.request.url).query) for c in http_mock.calls}
    assert set(queried) == {"abc", *(SEARCH_KEYS[k] for k in queried_keys)}
    assert queried["Observation"] == {"patient": [PID], "code": [observation_codes()], "_sort": ["-date"], "_count": ["200"]}
    assert queried["Procedure"] == {"patient": [PID], "_count": ["200"]}  # one page for a typical history
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in http_mock.calls)
    assert all(o == COMPLETE for o in record.outcomes.values())
    assert sum(r["resourceType"] == "Observation" for r in record.resources) == 2
    assert record.fetched_any and set(record.queried) == {"user", *queried_keys}


def test_no_token_means_no_authorization_header(http_mock):
    http_mock.get(f"{EHR}/Procedure", json=searchset([]))
    prefetch = {k: v for k, v in full_prefetch().items() if k != "procedures"}
    retrieve(prefetch, token=None)
    assert len(http_mock.calls) == 1 and "Authorization" not in http_mock.calls[0].request.headers


def test_paginated_prefetch_is_followed_with_the_token(http_mock):
    prefetch = full_prefetch()
    prefetch["observations"] = searchset([resource("Observation", 1)], f"{EHR}/Observation?patient={PID}&_page=2")
    http_mock.get(f"{EHR}/Observation?patient={PID}&_page=2", json=searchset([resource("Observation", 2)], f"{EHR}/Observation?patient={PID}&_page=3"))
    http_mock.get(f"{EHR}/Observation?patient={PID}&_page=3", json=searchset([resource("Observation", 3)]))
    record = retrieve(prefetch)
    assert [r["id"] for r in record.resources if r["resourceType"] == "Observation"] == ["observation-1", "observation-2", "observation-3"]
    assert record.outcomes["Observation"] == COMPLETE
    assert [c.request.headers["Authorization"] for c in http_mock.calls] == [f"Bearer {TOKEN}"] * 2


def test_paginated_prefetch_next_link_to_another_host_is_not_followed(http_mock):
    prefetch = full_prefetch()
    prefetch["observations"] = searchset([resource("Observation", 1)], "https://collector.evil.example/Observation?page=2")
    record = retrieve(prefetch)
    assert not http_mock.calls  # the token went nowhere
    assert record.outcomes["Observation"] == RetrievalOutcome(RetrievalState.PARTIAL, "next-off-origin")
    assert [r["id"] for r in record.resources if r["resourceType"] == "Observation"] == ["observation-1"]


def test_paginated_prefetch_past_the_deadline_is_partial(http_mock):
    now = [0.0]
    prefetch = full_prefetch()
    prefetch["observations"] = searchset([resource("Observation", 1)], f"{EHR}/Observation?_page=2")
    deadline = Deadline(3.0, clock=lambda: now[0])
    now[0] = 3.5  # the deadline passed before paging could start
    record = retrieve(prefetch, deadline=deadline)
    assert not http_mock.calls
    assert record.outcomes["Observation"] == RetrievalOutcome(RetrievalState.PARTIAL, "deadline")


def test_own_query_pagination_with_page_cap(http_mock):
    prefetch = {k: v for k, v in full_prefetch().items() if k != "conditions"}
    http_mock.get(f"{EHR}/Condition?patient={PID}&_count=200", json=searchset([resource("Condition", 1)], f"{EHR}/Condition?patient={PID}&_page=2"))
    http_mock.get(f"{EHR}/Condition?patient={PID}&_page=2", json=searchset([resource("Condition", 2)], f"{EHR}/Condition?patient={PID}&_page=3"))
    record = retrieve(prefetch, limits=RetrievalLimits(max_pages=2))
    assert record.outcomes["Condition"] == RetrievalOutcome(RetrievalState.PARTIAL, "page-cap")
    assert len(http_mock.calls) == 2


@pytest.mark.parametrize(
    "answer, reason",
    [
        ({"status": 401}, "http-401"),
        ({"status": 403}, "http-403"),
        ({"status": 404}, "http-404"),
        ({"status": 429, "headers": {"Retry-After": "5"}}, "http-429"),
        ({"status": 500}, "http-5xx"),
        ({"body": b'{"resourceType": "Bundle", "entr'}, "not-json"),
        ({"body": b"<html><body><h1>502 Bad Gateway</h1></body></html>", "content_type": "text/html"}, "not-fhir"),
        ({"json": {**searchset([]), "type": "batch-response"}}, "not-fhir"),
        ({"body": requests.ConnectionError("[Errno 111] Connection refused")}, "connection"),
        ({"body": requests.ReadTimeout()}, "timeout"),
    ],
)
def test_a_failed_query_fails_only_its_resource_type(http_mock, answer, reason):
    prefetch = {k: v for k, v in full_prefetch().items() if k not in ("observations", "procedures")}
    http_mock.get(f"{EHR}/Observation", **answer)
    http_mock.get(f"{EHR}/Procedure", json=searchset([resource("Procedure", 1)]))
    record = retrieve(prefetch)
    assert record.outcomes["Observation"] == RetrievalOutcome(RetrievalState.FAILED, reason)
    assert record.outcomes["Procedure"] == COMPLETE
    assert not any(r["resourceType"] == "Observation" for r in record.resources)


def test_every_query_failing_without_prefetch_is_unavailable(http_mock, caplog):
    caplog.set_level(logging.DEBUG)
    http_mock.get(f"{EHR}/Patient/{PID}", status=401)
    http_mock.get(f"{EHR}/Practitioner/abc", status=401)
    for resource_type in SEARCH_KEYS.values():
        http_mock.get(f"{EHR}/{resource_type}", body=requests.ConnectionError(f"refused, Authorization: Bearer {TOKEN}"))
    with pytest.raises(RecordUnavailable) as caught:
        retrieve({"observations": {"resourceType": "OperationOutcome", "issue": []}})
    assert caught.value.reason == "all-queries-failed"
    assert "http-401" in str(caught.value) and "connection" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in caplog.text and PID not in caplog.text


def test_one_answer_from_the_server_is_enough_to_answer(http_mock):
    http_mock.get(f"{EHR}/Patient/{PID}", json=PATIENT)
    http_mock.get(f"{EHR}/Practitioner/abc", status=500)
    for resource_type in SEARCH_KEYS.values():
        http_mock.get(f"{EHR}/{resource_type}", status=503)
    record = retrieve(None)
    assert record.outcomes["Patient"] == COMPLETE
    assert record.outcomes["Coverage"] == RetrievalOutcome(RetrievalState.FAILED, "http-5xx")


def test_missing_user_context_fails_only_the_user_read(http_mock):
    prefetch = {k: v for k, v in full_prefetch().items() if k != "user"}
    record = retrieve_record(fhir_server=EHR, access_token=TOKEN, prefetch=prefetch, patient_id=PID, user_id=None)
    assert not http_mock.calls
    assert record.outcomes["Practitioner"] == RetrievalOutcome(RetrievalState.FAILED, "missing-context")


def test_slow_server_does_not_hold_the_hook_past_the_deadline(http_mock):
    """One query never answers until the test releases it. retrieve_record must return at its deadline
    with that type failed (timeout) while the request is still hanging, not wait for it."""
    release, finished = threading.Event(), threading.Event()
    timeouts = []

    def hanging(request):
        timeouts.append(request.req_kwargs["timeout"])
        release.wait(10)
        finished.set()
        return 200, {}, json.dumps(searchset([]))

    prefetch = {k: v for k, v in full_prefetch().items() if k not in ("observations", "procedures")}
    http_mock.add_callback(responses.GET, f"{EHR}/Observation", callback=hanging)
    http_mock.get(f"{EHR}/Procedure", json=searchset([resource("Procedure", 1)]))
    try:
        record = retrieve(prefetch, limits=RetrievalLimits(deadline_seconds=0.3))
        assert not finished.is_set(), "retrieval waited for the hanging request"
    finally:
        release.set()
    assert record.outcomes["Observation"] == RetrievalOutcome(RetrievalState.FAILED, "timeout")
    assert record.outcomes["Procedure"] == COMPLETE
    assert max(timeouts[0]) <= 0.3  # the request itself was given no more than the deadline


def test_fallback_queries_run_in_parallel(http_mock):
    """Six queries: each answer waits at a barrier for six requests to be in flight together; run one
    after another they would break the barrier instead."""
    barrier = threading.Barrier(6, timeout=5)
    lock, in_flight, peak = threading.Lock(), [0], [0]

    def answer(request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        barrier.wait()
        with lock:
            in_flight[0] -= 1
        resource_type = urlsplit(request.url).path.rsplit("/", 1)[-1]
        return 200, {}, json.dumps(searchset([resource(resource_type, 1)]))

    keys = ["conditions", "observations", "medicationStatements", "medicationAdministrations", "medicationRequests", "procedures"]
    for key in keys:
        http_mock.add_callback(responses.GET, f"{EHR}/{SEARCH_KEYS[key]}", callback=answer)
    prefetch = {k: v for k, v in full_prefetch().items() if k not in keys}
    record = retrieve(prefetch, limits=RetrievalLimits(deadline_seconds=10))
    assert peak[0] == 6
    assert all(o == COMPLETE for o in record.outcomes.values())


def test_worker_bound_limits_concurrency(http_mock):
    lock, in_flight, peak = threading.Lock(), [0], [0]

    def answer(request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
        return 200, {}, json.dumps(searchset([]))

    for resource_type in SEARCH_KEYS.values():
        http_mock.add_callback(responses.GET, f"{EHR}/{resource_type}", callback=answer)
    record = retrieve({"patient": PATIENT, "user": PRACTITIONER}, limits=RetrievalLimits(max_workers=2, deadline_seconds=10))
    assert peak[0] <= 2 and len(http_mock.calls) == len(SEARCH_KEYS)
    assert all(o == COMPLETE for o in record.outcomes.values())


def test_token_never_logged(http_mock, caplog):
    caplog.set_level(logging.DEBUG)
    http_mock.get(f"{EHR}/Practitioner/abc", status=401)
    serve_searches(http_mock, SEARCH_KEYS)
    record = retrieve({"patient": PATIENT})
    assert record.outcomes["Practitioner"] == RetrievalOutcome(RetrievalState.FAILED, "http-401")
    assert "record retrieval" in caplog.text
    assert TOKEN not in caplog.text and "top-secret" not in caplog.text


# --------------------------------------------------------------------------------------------------
# Draft orders' references
# --------------------------------------------------------------------------------------------------

def order(**fields):
    return {
        "resourceType": "MedicationRequest",
        "id": "draft-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PID}"},
        **fields,
    }


def resolve(orders, prefetch=None, fhir_server=EHR):
    return resolve_order_references(orders, fhir_server=fhir_server, access_token=TOKEN, prefetch=prefetch, patient_id=PID)


def test_referenced_medication_and_requester_are_read(http_mock):
    medication = {"resourceType": "Medication", "id": "med-1", "code": {"text": "cell product"}}
    http_mock.get(f"{EHR}/Medication/med-1", json=medication)
    http_mock.get(f"{EHR}/Practitioner/abc", json=PRACTITIONER)
    http_mock.get(f"{EHR}/PractitionerRole?practitioner=abc", json=searchset([ROLE]))
    resolved = resolve([order(medicationReference={"reference": "Medication/med-1"}, requester={"reference": "Practitioner/abc"})])
    assert {f"{r['resourceType']}/{r['id']}" for r in resolved.resources} == {"Medication/med-1", "Practitioner/abc", "PractitionerRole/role1"}
    assert resolved.outcomes == {"Medication": COMPLETE, "Practitioner": COMPLETE, "PractitionerRole": COMPLETE}
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in http_mock.calls)


def test_contained_or_prefetched_references_need_no_read(http_mock):
    contained = order(
        id="draft-2",
        contained=[{"resourceType": "Medication", "id": "m"}],
        medicationReference={"reference": "#m"},
        requester={"reference": "Practitioner/abc"},
    )
    in_prefetch = order(medicationReference={"reference": f"{EHR}/Medication/med-9"}, requester={"reference": "Practitioner/abc"})
    prefetch = {"user": PRACTITIONER, "medicationRequests": searchset([{"resourceType": "Medication", "id": "med-9"}])}
    prefetch["medicationRequests"]["entry"][0]["search"]["mode"] = "include"
    http_mock.get(f"{EHR}/PractitionerRole?practitioner=abc", json=searchset([ROLE]))
    resolved = resolve([contained, in_prefetch], prefetch=prefetch)
    assert [c.request.url for c in http_mock.calls] == [f"{EHR}/PractitionerRole?practitioner=abc"]
    assert resolved.outcomes == {"PractitionerRole": COMPLETE}


def test_practitioner_role_requester_reads_its_practitioner(http_mock):
    http_mock.get(f"{EHR}/PractitionerRole/role1", json=ROLE)
    http_mock.get(f"{EHR}/Practitioner/abc", json=PRACTITIONER)
    resolved = resolve([order(requester={"reference": "PractitionerRole/role1"})])
    assert [r["resourceType"] for r in resolved.resources] == ["PractitionerRole", "Practitioner"]
    assert resolved.outcomes == {"PractitionerRole": COMPLETE, "Practitioner": COMPLETE}


def test_reference_to_another_server_is_not_read(http_mock):
    resolved = resolve([order(medicationReference={"reference": "https://evil.example/fhir/Medication/m1"})])
    assert not http_mock.calls
    assert resolved.outcomes == {"Medication": RetrievalOutcome(RetrievalState.FAILED, "unresolvable-reference")}


def test_failed_medication_read_is_reported(http_mock):
    http_mock.get(f"{EHR}/Medication/med-1", status=404)
    resolved = resolve([order(medicationReference={"reference": "Medication/med-1"})])
    assert resolved.outcomes == {"Medication": RetrievalOutcome(RetrievalState.FAILED, "http-404")}
    no_server = resolve([order(medicationReference={"reference": "Medication/med-1"})], fhir_server=None)
    assert no_server.outcomes == {"Medication": RetrievalOutcome(RetrievalState.FAILED, "no-fhir-server")}


def test_requester_who_is_the_user_is_read_once_with_the_record(http_mock):
    http_mock.get(f"{EHR}/Practitioner/abc", json=PRACTITIONER)
    http_mock.get(f"{EHR}/PractitionerRole?practitioner=abc", json=searchset([ROLE]))
    prefetch = {k: v for k, v in full_prefetch().items() if k not in ("user", "userRoles")}
    draft = order(requester={"reference": "Practitioner/abc"})
    record = retrieve(prefetch, draft_orders=[draft])
    assert sorted(c.request.url for c in http_mock.calls) == [f"{EHR}/Practitioner/abc", f"{EHR}/PractitionerRole?practitioner=abc"]
    assert record.outcomes["PractitionerRole"] == COMPLETE and record.outcomes["Practitioner"] == COMPLETE
    assert sum(r["resourceType"] == "Practitioner" for r in record.resources) == 1


def test_failed_role_search_does_not_hide_record_outcomes(http_mock):
    http_mock.get(f"{EHR}/PractitionerRole?practitioner=abc", status=403)
    prefetch = {k: v for k, v in full_prefetch().items() if k != "userRoles"}
    record = retrieve(prefetch, draft_orders=[order(requester={"reference": "Practitioner/abc"})])
    assert record.outcomes["PractitionerRole"] == RetrievalOutcome(RetrievalState.FAILED, "http-403")
    assert record.outcomes["Practitioner"] == COMPLETE


@pytest.mark.parametrize("roles", [[ROLE], []], ids=["one role", "no role"])
def test_prefetched_user_roles_spare_the_requester_role_search(http_mock, roles):
    prefetch = {**full_prefetch(), "userRoles": searchset(roles)}
    record = retrieve(prefetch, draft_orders=[order(requester={"reference": "Practitioner/abc"})])
    assert not http_mock.calls
    assert record.outcomes["PractitionerRole"] == COMPLETE


def test_another_requester_than_the_user_still_has_their_roles_searched(http_mock):
    http_mock.get(f"{EHR}/Practitioner/xyz", json={**PRACTITIONER, "id": "xyz"})
    http_mock.get(f"{EHR}/PractitionerRole?practitioner=xyz", json=searchset([]))
    retrieve(full_prefetch(), draft_orders=[order(requester={"reference": "Practitioner/xyz"})])
    assert sorted(c.request.url for c in http_mock.calls) == [
        f"{EHR}/Practitioner/xyz", f"{EHR}/PractitionerRole?practitioner=xyz"]


def test_user_roles_are_not_asked_of_a_role_user(http_mock):
    role_user = {**ROLE, "id": "role9"}
    http_mock.get(f"{EHR}/PractitionerRole/role9", json=role_user)
    http_mock.get(f"{EHR}/Practitioner/abc", json=PRACTITIONER)
    prefetch = {k: v for k, v in full_prefetch().items() if k not in ("user", "userRoles")}
    record = retrieve_record(fhir_server=EHR, access_token=TOKEN, prefetch=prefetch, patient_id=PID,
                             user_id="PractitionerRole/role9")
    assert [c.request.url for c in http_mock.calls] == [f"{EHR}/PractitionerRole/role9"]
    assert "PractitionerRole" not in record.outcomes  # nothing asked of the roles search, nothing failed


# --------------------------------------------------------------------------------------------------
# A real loopback FHIR fake (also used for the latency measurement in docs/retrieval.md)
# --------------------------------------------------------------------------------------------------

class SlowFhirServer:
    """A loopback FHIR server answering every search with a one-entry searchset after ``delay``
    seconds; counts the requests in flight together."""

    def __init__(self, delay: float):
        self.delay, self.in_flight, self.peak, self.lock = delay, 0, 0, threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with fake.lock:
                    fake.in_flight += 1
                    fake.peak = max(fake.peak, fake.in_flight)
                time.sleep(fake.delay)
                resource_type = urlsplit(self.path).path.rsplit("/", 1)[-1]
                body = json.dumps(searchset([resource(resource_type, 1)])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with fake.lock:
                    fake.in_flight -= 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/fhir"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.loopback_http
def test_six_fallback_queries_overlap_against_a_real_server():
    fake = SlowFhirServer(delay=0.2)
    keys = ["conditions", "observations", "medicationStatements", "medicationAdministrations", "medicationRequests", "procedures"]
    prefetch = {k: v for k, v in full_prefetch().items() if k not in keys}
    try:
        record = retrieve(prefetch, fhir_server=fake.base_url, limits=RetrievalLimits(deadline_seconds=10))
    finally:
        fake.close()
    assert fake.peak == 6
    assert all(o == COMPLETE for o in record.outcomes.values())
