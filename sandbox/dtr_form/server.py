"""The DTR form filler page served next to the service, for the sandbox, the demo and the browser test.

``form_server(scenario)`` starts on a free 127.0.0.1 port one process serving both the service (hooks and
``/fhir``) and the page (``/dtr-form/``, with LHC-Forms from ``node_modules``, installed by ``npm ci`` in
this directory), so the page calls ``$questionnaire-package`` and ``$evaluate`` on its own origin (no
CORS). It signs the scenario's order first (its recorded hook with complete prefetch, so no FHIR server is
needed), as an EHR would, and serves what a DTR launch gives the app at ``/dtr-form/launch.json``: the
member's Coverage, the coverage-information's ``coverage-assertion-id`` and the signed-in user (who
authors the answers).

Development only: client authentication is off (the page holds no SMART Backend Services client, see
docs/dtr.md) and the audit database is in memory.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from flask import Flask, Response, send_from_directory
from werkzeug.serving import WSGIRequestHandler, make_server

from cds_service.app import create_app
from cds_service.response.coverage_information import COVERAGE_INFORMATION_URL
from cds_service.settings import Settings
from sandbox import recorded

HERE = Path(__file__).resolve().parent
LFORMS = HERE / "node_modules" / "lforms" / "dist" / "lforms"
SERVICE_PATH = "/cds-services/car-t-coverage"
PAGE_PATH = "/dtr-form/"


def lforms_installed() -> bool:
    return (LFORMS / "webcomponent" / "lhc-forms.js").is_file() and (LFORMS / "fhir" / "R4" / "lformsFHIR.min.js").is_file()


def recorded_hook(scenario: str) -> dict:
    """The scenario's recorded order-sign request with complete prefetch, without a FHIR server."""
    body = orjson.loads((recorded.SANDBOX / "hooks" / f"{scenario}-prefetch.json").read_bytes())
    body.pop("fhirAuthorization", None)
    body.pop("fhirServer", None)
    return body


def assertion_ids(answer: dict) -> list[str]:
    """The ``coverage-assertion-id`` of each coverage-information in a hook's answer."""
    return [part["valueString"] for action in answer.get("systemActions", ())
            for extension in action["resource"].get("extension", ()) if extension["url"] == COVERAGE_INFORMATION_URL
            for part in extension["extension"] if part["url"] == "coverage-assertion-id"]


def sign_order(app: Flask, scenario: str) -> dict:
    """Send the scenario's hook to ``app`` as the EHR does; returns the DTR launch (Coverage, context)."""
    hook = recorded_hook(scenario)
    answer = app.test_client().post(SERVICE_PATH, json=hook)
    if answer.status_code != 200 or not assertion_ids(answer.get_json()):
        raise RuntimeError(f"{scenario}: the hook gave no coverage-information ({answer.status_code})")
    user = hook["context"]["userId"]
    return {"coverage": hook["prefetch"]["coverage"]["entry"][0]["resource"],
            "context": assertion_ids(answer.get_json())[0],
            "user": user if "/" in user else f"Practitioner/{user}"}


def add_page(app: Flask, launch: dict) -> None:
    """Serve the page and its files under ``/dtr-form/``, and ``launch`` (as it is when asked) as
    ``launch.json``."""

    @app.get(PAGE_PATH, defaults={"name": "index.html"}, endpoint="dtr_form_page")
    @app.get(PAGE_PATH + "<path:name>", endpoint="dtr_form_file")
    def page(name: str) -> Response:
        if name == "launch.json":
            return Response(orjson.dumps(launch), mimetype="application/json")
        return send_from_directory(HERE, name)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


def _not_started(environ, start_response):  # until the app, which needs the bound port, exists
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


@dataclass(frozen=True)
class FormServer:
    url: str  # the service's base URL
    launch: dict

    @property
    def page(self) -> str:
        return self.url + PAGE_PATH


@contextlib.contextmanager
def form_server(scenario: str, as_of) -> Iterator[FormServer]:
    """Serve the service and the page on loopback, with ``scenario``'s order signed, until the block ends."""
    server = make_server("127.0.0.1", 0, _not_started, threaded=True, request_handler=_QuietHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        app = create_app(Settings(auth_disabled=True, database_url="sqlite://", public_base_url=url,
                                  log_level="ERROR"), as_of=as_of)
        launch: dict = {}
        add_page(app, launch)  # routes are added before the app's first request
        launch.update(sign_order(app, scenario))
        server.app = app
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield FormServer(url, launch)
        server.shutdown()
        thread.join()
    finally:
        server.server_close()
