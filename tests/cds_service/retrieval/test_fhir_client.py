"""FhirClient against a `responses` fake of an EHR FHIR server (Bundles shaped as HAPI/Epic send them)."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from cds_service.retrieval.fhir_client import Deadline, FhirClient, FhirRequestError, error_for_status, search_page

BASE = "https://ehr.example.org/fhir/R4"
TOKEN = "eyJhbGciOiJSUzM4NCJ9.secret-access-token.sig"
CONDITION = {
    "resourceType": "Condition",
    "id": "c1",
    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]},
    "subject": {"reference": "Patient/p1"},
}


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def bundle(resources, next_url=None, kind="searchset"):
    links = [{"relation": "self", "url": f"{BASE}/Condition?patient=p1"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": kind,
        "total": len(resources),
        "link": links,
        "entry": [
            {"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


def condition(n):
    return {**CONDITION, "id": f"c{n}"}


def client(token=TOKEN, seconds=3.0, clock=None, **kwargs):
    return FhirClient(BASE, token, Deadline(seconds, clock or FakeClock()), **kwargs)


def test_read_sends_fhir_accept_bearer_token_and_deadline_timeouts(http_mock):
    http_mock.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    clock = FakeClock()
    fhir = client(clock=clock, seconds=2.5)
    clock.now += 1.0
    assert fhir.read("Patient/p1", ("Patient",))["id"] == "p1"
    sent = http_mock.calls[0].request
    assert sent.headers["Accept"] == "application/fhir+json"
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.req_kwargs["timeout"] == (1.5, 1.5)  # what is left of the hook's deadline


def test_no_authorization_header_without_token(http_mock):
    http_mock.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    client(token=None).read("Patient/p1", ("Patient",))
    assert "Authorization" not in http_mock.calls[0].request.headers


def test_search_encodes_values_as_query_parameters(http_mock):
    http_mock.get(f"{BASE}/Observation", json=bundle([]))
    hostile = "p1&_include=*&code=x"
    client().search("Observation", {"patient": hostile, "code": "http://loinc.org|1234-5,http://loinc.org|6789-0"})
    query = parse_qs(urlsplit(http_mock.calls[0].request.url).query)
    assert query == {"patient": [hostile], "code": ["http://loinc.org|1234-5,http://loinc.org|6789-0"]}


def test_search_follows_next_links_on_the_same_origin(http_mock):
    page2 = f"{BASE}?_getpages=abc&_getpagesoffset=1&_count=1"  # HAPI pages from the server root
    page3 = "Condition?patient=p1&_page=3"  # relative link, resolved against the base
    http_mock.get(f"{BASE}/Condition", json=bundle([condition(1)], page2), match=[responses.matchers.query_param_matcher({"patient": "p1"})])
    http_mock.get(page2, json=bundle([condition(2)], page3), match=[responses.matchers.query_param_matcher({"_getpages": "abc", "_getpagesoffset": "1", "_count": "1"})])
    http_mock.get(f"{BASE}/Condition", json=bundle([condition(3)]), match=[responses.matchers.query_param_matcher({"patient": "p1", "_page": "3"})])
    result = client().search("Condition", {"patient": "p1"})
    assert [r["id"] for r in result.resources] == ["c1", "c2", "c3"]
    assert result.complete and result.reason is None
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in http_mock.calls)


def test_next_link_to_another_host_is_not_followed_and_gets_no_token(http_mock):
    http_mock.get(f"{BASE}/Condition", json=bundle([condition(1)], "https://evil.example/fhir/Condition?page=2"))
    result = client().search("Condition", {"patient": "p1"})
    assert [r["id"] for r in result.resources] == ["c1"]
    assert (result.complete, result.reason) == (False, "next-off-origin")
    assert [urlsplit(c.request.url).hostname for c in http_mock.calls] == ["ehr.example.org"]


@pytest.mark.parametrize("next_url", ["http://ehr.example.org/fhir/R4/Condition?p=2", "https://ehr.example.org:8443/fhir/R4/Condition?p=2"])
def test_next_link_with_other_scheme_or_port_is_another_origin(http_mock, next_url):
    http_mock.get(f"{BASE}/Condition", json=bundle([condition(1)], next_url))
    assert client().search("Condition", {}).reason == "next-off-origin"
    assert len(http_mock.calls) == 1


def test_page_cap_stops_paging_as_partial(http_mock):
    http_mock.get(f"{BASE}/Condition", json=bundle([condition(1)], f"{BASE}/Condition?_page=2"))
    http_mock.get(f"{BASE}/Condition?_page=2", json=bundle([condition(2)], f"{BASE}/Condition?_page=3"))
    result = client(max_pages=2).search("Condition", {})
    assert [r["id"] for r in result.resources] == ["c1", "c2"]
    assert (result.complete, result.reason) == (False, "page-cap")
    assert len(http_mock.calls) == 2


def test_deadline_between_pages_stops_paging_as_partial(http_mock):
    clock = FakeClock()

    def first_page(request):
        clock.now += 5.0  # the server took longer than the whole deadline
        return 200, {}, json.dumps(bundle([condition(1)], f"{BASE}/Condition?_page=2"))

    http_mock.add_callback(responses.GET, f"{BASE}/Condition", callback=first_page)
    result = client(clock=clock, seconds=3.0, max_bytes=10**9).search("Condition", {})
    assert (result.complete, result.reason) == (False, "deadline")
    assert len(http_mock.calls) == 1


def test_body_still_streaming_after_the_deadline_is_abandoned(http_mock):
    clock = FakeClock()
    big = json.dumps(bundle([condition(n) for n in range(2000)]))  # several 64 KiB chunks

    def late(request):
        clock.now += 5.0
        return 200, {}, big

    http_mock.add_callback(responses.GET, f"{BASE}/Condition", callback=late)
    with pytest.raises(FhirRequestError) as caught:
        client(clock=clock, seconds=3.0, max_bytes=10**9).search("Condition", {})
    assert caught.value.reason == "timeout"


def test_failed_later_page_keeps_earlier_pages_as_partial(http_mock):
    http_mock.get(f"{BASE}/Condition", json=bundle([condition(1)], f"{BASE}/Condition?_page=2"))
    http_mock.get(f"{BASE}/Condition?_page=2", status=503)
    result = client().search("Condition", {})
    assert [r["id"] for r in result.resources] == ["c1"]
    assert (result.complete, result.reason) == (False, "http-5xx")


OPERATION_OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "security"}]}


@pytest.mark.parametrize(
    "status, reason",
    [(401, "http-401"), (403, "http-403"), (404, "http-404"), (410, "http-410"), (429, "http-429"),
     (400, "http-4xx"), (500, "http-5xx"), (502, "http-5xx"), (503, "http-5xx")],
)
def test_http_status_maps_to_typed_error(http_mock, status, reason):
    http_mock.get(f"{BASE}/Condition", status=status, json=OPERATION_OUTCOME)
    with pytest.raises(FhirRequestError) as caught:
        client().search("Condition", {"patient": "p1"})
    assert caught.value.reason == reason
    assert caught.value.resource_type == "Condition"


def test_status_mapping_is_one_table():
    assert error_for_status(200) is None and error_for_status(204) is None
    assert error_for_status(418).reason == "http-4xx"
    assert error_for_status(599).reason == "http-5xx"


@pytest.mark.parametrize(
    "body, content_type, reason",
    [
        (b'{"resourceType": "Bundle", "type": "searchset", "entry": [', "application/fhir+json", "not-json"),
        (b"", "application/fhir+json", "not-json"),
        (b"<!DOCTYPE html><html><body><h1>HTTP Status 500 - Internal Server Error</h1></body></html>", "text/html", "not-fhir"),
        (b"<html><body>Please sign in</body></html>", "application/json", "not-fhir"),
        (b'["not", "a", "resource"]', "application/json", "not-fhir"),
        (b'{"hello": "world"}', "application/json", "not-fhir"),
        (json.dumps(bundle([condition(1)], kind="collection")).encode(), "application/fhir+json", "not-fhir"),
        (json.dumps(bundle([condition(1)], kind="history")).encode(), "application/fhir+json", "not-fhir"),
        (json.dumps(bundle([{"resourceType": "Observation", "id": "o1"}])).encode(), "application/fhir+json", "not-fhir"),
        (json.dumps(OPERATION_OUTCOME).encode(), "application/fhir+json", "not-fhir"),
    ],
)
def test_unusable_bodies_are_typed_errors(http_mock, body, content_type, reason):
    http_mock.get(f"{BASE}/Condition", body=body, content_type=content_type)
    with pytest.raises(FhirRequestError) as caught:
        client().search("Condition", {"patient": "p1"})
    assert caught.value.reason == reason


def test_read_of_the_wrong_resource_type_is_not_fhir(http_mock):
    http_mock.get(f"{BASE}/Patient/p1", json=OPERATION_OUTCOME)
    with pytest.raises(FhirRequestError) as caught:
        client().read("Patient/p1", ("Patient",))
    assert caught.value.reason == "not-fhir"


def test_search_keeps_included_resources_and_drops_outcome_entries():
    page = bundle([condition(1)])
    page["entry"].append({"resource": {"resourceType": "Patient", "id": "p1"}, "search": {"mode": "include"}})
    page["entry"].append({"resource": OPERATION_OUTCOME, "search": {"mode": "outcome"}})
    resources, next_url = search_page(page, ("Condition",))
    assert [r["resourceType"] for r in resources] == ["Condition", "Patient"]
    assert next_url is None


@pytest.mark.parametrize("declared", [True, False])
def test_response_over_the_byte_cap_is_refused(http_mock, declared):
    body = json.dumps(bundle([condition(n) for n in range(200)])).encode()
    headers = {} if declared else {"Transfer-Encoding": "chunked"}
    http_mock.get(f"{BASE}/Condition", body=body, content_type="application/fhir+json", headers=headers, auto_calculate_content_length=declared)
    with pytest.raises(FhirRequestError) as caught:
        client(max_bytes=10_000).search("Condition", {})
    assert caught.value.reason == "too-large"


@pytest.mark.parametrize(
    "failure, reason",
    [
        (requests.ConnectionError("[Errno 111] Connection refused"), "connection"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "timeout"),
        (requests.ReadTimeout("read timed out"), "timeout"),
        (requests.exceptions.ChunkedEncodingError("connection broken"), "connection"),
    ],
)
def test_transport_failures_are_typed(http_mock, failure, reason):
    http_mock.get(f"{BASE}/Condition", body=failure)
    with pytest.raises(FhirRequestError) as caught:
        client().search("Condition", {})
    assert caught.value.reason == reason
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_slow_server_is_cut_at_the_deadline(http_mock):
    """The fake server answers after 10 s; the client must allow no more than the deadline and fail as
    a timeout (requests raises ReadTimeout when the read timeout passes first)."""
    allowed = []

    def slow(request):
        allowed.append(request.req_kwargs["timeout"])
        if max(request.req_kwargs["timeout"]) < 10.0:
            raise requests.ReadTimeout("read timed out")
        return 200, {}, json.dumps(bundle([]))

    http_mock.add_callback(responses.GET, f"{BASE}/Condition", callback=slow)
    with pytest.raises(FhirRequestError) as caught:
        client(seconds=0.75).search("Condition", {})
    assert caught.value.reason == "timeout"
    assert allowed == [(0.75, 0.75)]


def test_no_request_once_the_deadline_has_passed(http_mock):
    clock = FakeClock()
    fhir = client(clock=clock, seconds=1.0)
    clock.now += 1.0
    with pytest.raises(FhirRequestError) as caught:
        fhir.read("Patient/p1", ("Patient",))
    assert caught.value.reason == "timeout"
    assert not http_mock.calls


def test_redirect_to_another_origin_is_refused(http_mock):
    http_mock.get(f"{BASE}/Patient/p1", status=302, headers={"Location": "https://login.evil.example/fhir/Patient/p1"})
    with pytest.raises(FhirRequestError) as caught:
        client().read("Patient/p1", ("Patient",))
    assert caught.value.reason == "off-origin"
    assert len(http_mock.calls) == 1


def test_redirect_on_the_same_origin_is_followed(http_mock):
    http_mock.get(f"{BASE}/Patient/p1", status=301, headers={"Location": "/fhir/R4/Patient/p1-merged"})
    http_mock.get(f"{BASE}/Patient/p1-merged", json={"resourceType": "Patient", "id": "p1-merged"})
    assert client().read("Patient/p1", ("Patient",))["id"] == "p1-merged"
    assert http_mock.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_redirect_loop_is_bounded(http_mock):
    http_mock.get(f"{BASE}/Patient/p1", status=302, headers={"Location": f"{BASE}/Patient/p1"})
    with pytest.raises(FhirRequestError):
        client().read("Patient/p1", ("Patient",))
    assert len(http_mock.calls) == 4


def test_token_never_in_logs_or_errors(http_mock, caplog):
    caplog.set_level(logging.DEBUG)
    http_mock.get(f"{BASE}/Condition", json=bundle([condition(1)], "https://evil.example/next"))
    http_mock.get(f"{BASE}/Patient/p1", status=401, json=OPERATION_OUTCOME)
    http_mock.get(f"{BASE}/Patient/p2", body=requests.ConnectionError(f"boom Bearer {TOKEN}"))
    fhir = client()
    fhir.search("Condition", {"patient": "p1"})
    messages = [repr(fhir)]
    for path in ("Patient/p1", "Patient/p2"):
        with pytest.raises(FhirRequestError) as caught:
            fhir.read(path, ("Patient",))
        messages += [str(caught.value), repr(caught.value)]
    logged = caplog.text + "".join(messages)
    assert caplog.records, "the client logs its requests"
    assert TOKEN not in logged and "secret-access-token" not in logged
    assert "p1" not in caplog.text  # no patient ids (URLs) in logs either
