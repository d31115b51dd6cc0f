"""POST /cds-services/car-t-coverage: public examples are accepted; malformed requests get a 4xx
OperationOutcome naming the offending JSON path."""

from __future__ import annotations

import copy
import json

import orjson
import pytest

from cds_service.hook_request import OrderSignRequest, inline_local_refs, json_path, parse_order_sign_request
from tests.cds_service.conftest import HOOK_URL, replaced
from tests.conftest import load_json
from tests.response_checks import check_response

ORDER_SIGN_EXAMPLES = [
    "crd221-order-sign-request.json",
    "crd221-order-sign-request-no-prefetch.json",
    "inferno-order-sign-request.json",
    "inferno-ri-order-sign-request-with-prefetch.json",
    "cdshooks3ballot-order-sign-request-paginated-prefetch.json",
]


def lib_r4_example() -> dict:
    """The order-sign library's "R4" context (its MedicationRequest has the STU3 dosage shape) in a
    complete request envelope."""
    return {
        "hook": "order-sign",
        "hookInstance": "5c3fbe3c-5d07-4c45-bb35-8c1e8b0c3f0a",
        "fhirServer": "https://ehr.example.org/fhir",
        "context": load_json("examples/order-sign-context-r4.json")["context"],
    }


def post(client, body, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(HOOK_URL, data=data, content_type=content_type)


@pytest.mark.parametrize("name", ORDER_SIGN_EXAMPLES)
def test_public_order_sign_examples_are_accepted(client, name):
    body = load_json(f"examples/{name}")

    response = post(client, body)

    assert response.status_code == 200
    check_response(response.get_json(), draft_orders=body["context"]["draftOrders"])


def test_library_example_with_stu3_dosage_is_accepted(client):
    body = lib_r4_example()
    assert "doseQuantity" in body["context"]["draftOrders"]["entry"][1]["resource"]["dosageInstruction"][0]

    response = post(client, body)

    assert response.status_code == 200
    check_response(response.get_json())


def test_no_order_in_scope_answers_empty_cards(client, order_sign_request):
    response = post(client, order_sign_request)

    assert response.get_json() == {"cards": []}


def test_unknown_members_are_ignored(client, order_sign_request):
    order_sign_request["futureField"] = {"anything": [1, 2]}
    order_sign_request["context"]["newContextField"] = "x"
    order_sign_request["extension"]["org.example.other"] = {"a": 1}

    assert post(client, order_sign_request).status_code == 200


def test_the_body_is_parsed_once_per_hook_call(client, order_sign_request, monkeypatch):
    """The input limits parse the body to check it; the route validates what they parsed."""
    body = json.dumps(order_sign_request).encode()
    parses_of_body = []
    real_loads = orjson.loads

    def counting_loads(data):
        parses_of_body.append(data == body)
        return real_loads(data)

    monkeypatch.setattr(orjson, "loads", counting_loads)
    response = post(client, body)

    assert response.status_code == 200 and response.get_json() == {"cards": []}
    assert parses_of_body.count(True) == 1


def test_request_is_parsed_into_frozen_typed_values(order_sign_request):
    request = parse_order_sign_request(json.dumps(order_sign_request).encode())

    assert isinstance(request, OrderSignRequest)
    assert request.hook_instance == "d5a80646-7ef5-4edf-ade9-72407ca28c76"
    assert request.fhir_server == "http://example.org/some-payer/fhir/crd"
    assert request.fhir_authorization.access_token == "some-opaque-fhir-access-token"
    assert request.fhir_authorization.patient == "123"
    assert "some-opaque-fhir-access-token" not in repr(request.fhir_authorization)
    assert request.context.user_id == "Practitioner/ABC"
    assert request.context.patient_id == "123" and request.context.encounter_id == "987"
    assert [r["id"] for r in request.context.draft_order_resources()] == ["1357", "2468"]
    assert request.prefetch["medication"] is None  # a null prefetch value means "no data"
    assert request.requested_version == "2.2"
    # max-cards 5 from the request, coverage-info defaulted, unknown codes (cost, claim, ...) dropped
    assert dict(request.configuration) == {"coverage-info": True, "guideline": True, "max-cards": 5}
    with pytest.raises(AttributeError):
        request.hook = "other"  # frozen


def test_configuration_defaults_when_absent():
    body = load_json("examples/inferno-order-sign-request.json")
    request = parse_order_sign_request(json.dumps(body).encode())

    assert dict(request.configuration) == {"coverage-info": True, "guideline": True, "max-cards": 10}
    assert request.prefetch is None and request.extension == {}


def test_unknown_configuration_codes_of_any_type_are_ignored(client, order_sign_request):
    order_sign_request["extension"]["davinci-crd.configuration"] = {"alt-drug": "yes", "coverage-info": False}

    request = parse_order_sign_request(json.dumps(order_sign_request).encode())

    assert dict(request.configuration) == {"coverage-info": False, "guideline": True, "max-cards": 10}
    assert post(client, order_sign_request).status_code == 200


def _drop(body: dict, path: tuple) -> dict:
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


VALID = load_json("examples/crd221-order-sign-request.json")
CONFIG = ("extension", "davinci-crd.configuration")

# (case, body (bytes or JSON value), content type, status, path named in issue[0].expression or None)
MALFORMED = [
    ("unparseable JSON", b'{"hook": "order-sign",', "application/json", 400, None),
    ("NaN is not JSON", b'{"hook": NaN}', "application/json", 400, None),
    ("invalid UTF-8", b'{"hook": "\xff"}', "application/json", 400, None),
    ("empty body", b"", "application/json", 400, None),
    ("body is an array", [], "application/json", 400, None),
    ("body is a string", b'"order-sign"', "application/json", 400, None),
    ("hook missing", _drop(VALID, ("hook",)), "application/json", 400, "hook"),
    ("hook not order-sign", replaced(VALID, ("hook",), "patient-view"), "application/json", 400, "hook"),
    ("hook not a string", replaced(VALID, ("hook",), 7), "application/json", 400, "hook"),
    ("hookInstance missing", _drop(VALID, ("hookInstance",)), "application/json", 400, "hookInstance"),
    ("hookInstance not a UUID", replaced(VALID, ("hookInstance",), "abc"), "application/json", 400, "hookInstance"),
    ("fhirServer not a URL", replaced(VALID, ("fhirServer",), "ftp://x"), "application/json", 400, "fhirServer"),
    ("fhirAuthorization without fhirServer", _drop(VALID, ("fhirServer",)), "application/json", 400, "fhirServer"),
    ("fhirAuthorization not an object", replaced(VALID, ("fhirAuthorization",), "token"), "application/json", 400,
     "fhirAuthorization"),
    ("access_token missing", _drop(VALID, ("fhirAuthorization", "access_token")), "application/json", 400,
     "fhirAuthorization.access_token"),
    ("token_type not Bearer", replaced(VALID, ("fhirAuthorization", "token_type"), "MAC"), "application/json", 400,
     "fhirAuthorization.token_type"),
    ("expires_in not an integer", replaced(VALID, ("fhirAuthorization", "expires_in"), "300"), "application/json",
     400, "fhirAuthorization.expires_in"),
    ("context missing", _drop(VALID, ("context",)), "application/json", 400, "context"),
    ("context not an object", replaced(VALID, ("context",), []), "application/json", 400, "context"),
    ("userId missing", _drop(VALID, ("context", "userId")), "application/json", 400, "context.userId"),
    ("userId not a reference", replaced(VALID, ("context", "userId"), "ABC"), "application/json", 400,
     "context.userId"),
    ("patientId missing", _drop(VALID, ("context", "patientId")), "application/json", 400, "context.patientId"),
    ("patientId with a slash", replaced(VALID, ("context", "patientId"), "../admin"), "application/json", 400,
     "context.patientId"),
    ("encounterId not a string", replaced(VALID, ("context", "encounterId"), 987), "application/json", 400,
     "context.encounterId"),
    ("draftOrders missing", _drop(VALID, ("context", "draftOrders")), "application/json", 400,
     "context.draftOrders"),
    ("draftOrders a list", replaced(VALID, ("context", "draftOrders"), []), "application/json", 400,
     "context.draftOrders"),
    ("draftOrders not a Bundle", replaced(VALID, ("context", "draftOrders"), {"resourceType": "MedicationRequest"}),
     "application/json", 400, "context.draftOrders.resourceType"),
    ("draftOrders entry not an array", replaced(VALID, ("context", "draftOrders", "entry"), {}), "application/json",
     400, "context.draftOrders.entry"),
    ("draftOrders entry without resource", replaced(VALID, ("context", "draftOrders", "entry"), [{"fullUrl": "x"}]),
     "application/json", 400, "context.draftOrders.entry[0].resource"),
    ("draft resource without resourceType",
     replaced(VALID, ("context", "draftOrders", "entry"), [{"resource": {"id": "1"}}]), "application/json", 400,
     "context.draftOrders.entry[0].resource.resourceType"),
    ("prefetch not an object", replaced(VALID, ("prefetch",), [1]), "application/json", 400, "prefetch"),
    ("prefetch value not a resource", replaced(VALID, ("prefetch", "patient"), "Patient/1"), "application/json", 400,
     "prefetch.patient"),
    ("extension not an object", replaced(VALID, ("extension",), [1]), "application/json", 400, "extension"),
    ("configuration not an object", replaced(VALID, CONFIG, [1]), "application/json", 400,
     'extension["davinci-crd.configuration"]'),
    ("coverage-info not a boolean", replaced(VALID, CONFIG + ("coverage-info",), "false"), "application/json", 400,
     'extension["davinci-crd.configuration"]["coverage-info"]'),
    ("max-cards not an integer", replaced(VALID, CONFIG + ("max-cards",), 2.5), "application/json", 400,
     'extension["davinci-crd.configuration"]["max-cards"]'),
    ("max-cards negative", replaced(VALID, CONFIG + ("max-cards",), -1), "application/json", 400,
     'extension["davinci-crd.configuration"]["max-cards"]'),
    ("requestedVersion not declared", replaced(VALID, ("extension", "davinci-crd.requestedVersion"), "2.0"),
     "application/json", 422, 'extension["davinci-crd.requestedVersion"]'),
    ("form-encoded body", b"hook=order-sign", "application/x-www-form-urlencoded", 415, None),
    ("plain text body", json.dumps(VALID), "text/plain", 415, None),
]


@pytest.mark.parametrize("case, body, content_type, status, path", MALFORMED, ids=[row[0] for row in MALFORMED])
def test_malformed_request_gets_operation_outcome_naming_the_path(client, case, body, content_type, status, path):
    response = post(client, body, content_type)

    assert response.status_code == status
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert issue["severity"] == "error" and issue["code"] and issue["diagnostics"]
    if path is None:
        assert "expression" not in issue
    else:
        assert issue["expression"] == [path]
        assert issue["diagnostics"].startswith(f"{path}: ")


def test_error_text_does_not_echo_the_value_sent(client):
    secret = "Jane Q Patient 1959-03-02"
    body = replaced(VALID, ("context", "patientId"), secret)
    body = replaced(body, ("fhirAuthorization", "access_token"), 12345)

    text = post(client, body).get_data(as_text=True)

    assert secret not in text and "12345" not in text


def test_content_type_with_charset_and_fhir_json_are_accepted(client):
    assert post(client, VALID, "application/json; charset=utf-8").status_code == 200
    assert post(client, VALID, "application/fhir+json").status_code == 200


def test_json_path_brackets_keys_that_are_not_identifiers():
    assert json_path(["context", "draftOrders", "entry", 0, "resource"]) == "context.draftOrders.entry[0].resource"
    assert json_path(["extension", "davinci-crd.configuration", "max-cards"]) == \
        'extension["davinci-crd.configuration"]["max-cards"]'
    assert json_path([]) is None


def test_schema_refs_are_inlined_at_load_and_a_recursive_one_is_kept():
    defs = {"id": {"type": "string", "x-error": "must be an id"},
            "tree": {"type": "array", "items": {"$ref": "#/$defs/tree"}}}
    schema = {"properties": {"a": {"$ref": "#/$defs/id"}, "t": {"$ref": "#/$defs/tree"},
                             "b": {"$ref": "#/$defs/id", "minLength": 1}}, "$defs": defs}

    inlined = inline_local_refs(schema, defs)

    assert inlined["properties"]["a"] == defs["id"]
    assert inlined["properties"]["t"] == {"type": "array", "items": {"$ref": "#/$defs/tree"}}
    assert inlined["properties"]["b"] == {"$ref": "#/$defs/id", "minLength": 1}  # not a bare reference
    assert inlined["$defs"].keys() == defs.keys()  # so the kept reference still resolves
