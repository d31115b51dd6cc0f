"""Driving the real service with the sandbox's hooks: sign an order, read the coverage-information, ask
for the package a DTR client would ask for."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson

from cds_service import create_app
from cds_service.response.coverage_information import COVERAGE_INFORMATION_URL
from sandbox.dtr_form.server import recorded_hook as hook  # noqa: F401 (the recorded hook, no FHIR server)
from tests.cds_service.conftest import HOOK_URL, protocol_settings

SANDBOX = Path(__file__).parents[3] / "sandbox"
AS_OF = date(2026, 11, 24)  # the sandbox's decision date
PACKAGE = "/fhir/Questionnaire/$questionnaire-package"


def sandbox_service():
    return create_app(protocol_settings(public_base_url="https://payer.example"), as_of=AS_OF)


def sign(app, body: dict) -> dict:
    answer = app.test_client().post(HOOK_URL, json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def coverage_information(answer: dict) -> list[dict]:
    """Each coverage-information extension of the answer, as ``{sub-extension url: value}``."""
    return [simple_parts(e) for a in answer["systemActions"] for e in a["resource"].get("extension", ())
            if e["url"] == COVERAGE_INFORMATION_URL]


def simple_parts(extension: dict) -> dict:
    """``{sub-extension url: value}`` of the parts with a value[x] (complex parts such as ``detail`` have none)."""
    return {p["url"]: value for p in extension["extension"]
            for value in [next((v for k, v in p.items() if k.startswith("value")), None)] if value is not None}


def package(app, body: dict, assertion_id: str):
    """``$questionnaire-package`` for the hook's Coverage and ``context``, as a DTR client sends it."""
    coverage = body["prefetch"]["coverage"]["entry"][0]["resource"]
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "coverage", "resource": coverage}, {"name": "context", "valueString": assertion_id}]}
    return app.test_client().post(PACKAGE, data=orjson.dumps(params), content_type="application/fhir+json")
