"""Loopback FHIR replay server: TEST TOOLING, not a FHIR server for production or for real patient data.

It serves the sandbox patients and the recorded responses over HTTP so the service can be exercised
without an EHR (``cart-cds sandbox fhir-server --port 8090``, the demo, the scenario tests). It binds to
the loopback interface only, is read-only (GET), and answers

1. a request whose key is in ``recorded/replay/*.json`` with the recorded status and body (so recorded
   failures and HAPI-style ``_getpages`` paging replay exactly);
2. ``GET [base]/Type/id`` with the resource from ``patients/*.json``;
3. ``GET [base]/Type?...`` by applying ``sandbox.search`` (patient, code, status, _tag, _sort, _count)
   to the patient resources, paging with ``_getpagesoffset`` next links;
4. ``GET [base]/metadata`` with a minimal CapabilityStatement.

Everything else gets a FHIR OperationOutcome with a 4xx status.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from sandbox import recorded
from sandbox.search import UnsupportedSearch, operation_outcome, search, searchset, url

SANDBOX = recorded.SANDBOX
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_PAGE = 20
MAX_PAGE = 200


class ReplayStore:
    """The data behind the server; answers ``(path, params) -> (status, body)`` without any HTTP."""

    def __init__(self, base: str, patients_dir: Path = SANDBOX / "patients",
                 recorded_dir: Path | None = recorded.RECORDED / "replay") -> None:
        """``recorded_dir=None``: no recorded responses, every request is answered from the patients
        (a server that honours ``_count`` up to ``MAX_PAGE``, as HAPI does)."""
        self.base = base.rstrip("/")
        self.resources: list[dict] = []
        for path in sorted(patients_dir.glob("*.json")):
            bundle = json.loads(path.read_text(encoding="utf-8"))
            self.resources.extend(entry["resource"] for entry in bundle.get("entry", ()))
        self.by_reference = {f"{r['resourceType']}/{r['id']}": r for r in self.resources}
        self.recorded = recorded.load_dir(recorded_dir, self.base) if recorded_dir and recorded_dir.is_dir() else {}

    def answer(self, path: str, params: list[tuple[str, str]]) -> tuple[int, dict]:
        path = path.strip("/")
        hit = self.recorded.get(recorded.request_key("GET", path, params))
        if hit is not None:
            return hit["status"], hit["body"]
        if path == "metadata":
            return 200, capability_statement()
        if not path:
            return 410, operation_outcome("not-found", "Search results for this page are no longer available")
        parts = path.split("/")
        if len(parts) == 2:
            resource = self.by_reference.get(path)
            if resource is None:
                return 404, operation_outcome("not-found", f"Resource {path} is not known")
            return 200, resource
        if len(parts) != 1 or not parts[0].isalpha():
            return 400, operation_outcome("not-supported", "Unsupported request path")
        return self._search(parts[0], params)

    def _search(self, resource_type: str, params: list[tuple[str, str]]) -> tuple[int, dict]:
        query = dict(params)
        if len(query) != len(params):
            return 400, operation_outcome("not-supported", "Repeated search parameters are not supported")
        try:
            count = min(int(query.pop("_count", DEFAULT_PAGE)), MAX_PAGE)
            offset = int(query.pop("_getpagesoffset", 0))
            matched = search(self.resources, resource_type, query)
        except UnsupportedSearch as exc:
            return 400, operation_outcome("not-supported", str(exc))
        except ValueError:
            return 400, operation_outcome("invalid", "_count and _getpagesoffset must be integers")
        if count < 1 or offset < 0:
            return 400, operation_outcome("invalid", "_count must be positive and _getpagesoffset not negative")
        page = matched[offset:offset + count]
        base_params = [(k, v) for k, v in params if k != "_getpagesoffset"]
        self_url = url(self.base, resource_type, params)
        next_url = None
        if offset + count < len(matched):
            next_url = url(self.base, resource_type, base_params + [("_getpagesoffset", str(offset + count))])
        return 200, searchset(self.base, page, self_url, next_url, total=len(matched))


def capability_statement() -> dict:
    types = ("Patient", "Coverage", "Practitioner", "PractitionerRole", "Condition", "Observation",
             "MedicationStatement", "MedicationAdministration", "MedicationRequest", "Procedure")
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-24",
        "kind": "instance",
        "software": {"name": "cart-cds sandbox replay server (test tooling)"},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server", "resource": [
            {"type": t, "interaction": [{"code": "read"}, {"code": "search-type"}]} for t in types]}],
    }


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as FHIR servers speak it, so a client's connection pool is exercised
    (every answer has a Content-Length); an idle connection is closed after ``timeout`` seconds. Headers
    and body go out as two writes: without TCP_NODELAY, Nagle's algorithm would hold the body back until
    the client's delayed ACK, some 40 ms per answer on a kept-alive connection."""

    store: ReplayStore  # set on the per-server subclass
    prefix: str
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        parts = urlsplit(self.path)
        if parts.path != self.prefix and not parts.path.startswith(self.prefix + "/"):
            self._send(404, operation_outcome("not-found", "Not a FHIR endpoint of this server"))
            return
        params = parse_qsl(parts.query, keep_blank_values=True)
        status, body = self.store.answer(parts.path[len(self.prefix):], params)
        self._send(status, body)

    def _refuse(self) -> None:
        self.close_connection = True  # the request body is not read: the connection cannot be reused
        self._send(405, operation_outcome("not-supported", "The replay server is read-only"))

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: request lines carry patient ids
        pass


class _ReplayHTTPServer(ThreadingHTTPServer):
    """The service sends up to FHIR_MAX_WORKERS fallback queries at once; the default listen backlog of
    5 drops some, and the kernel retries them only after a second."""

    request_queue_size = 64
    daemon_threads = True


def make_server(host: str = "127.0.0.1", port: int = 8090, **store_dirs) -> ThreadingHTTPServer:
    """A threaded server on ``host:port`` (port 0 picks a free port); refuses non-loopback hosts."""
    if host not in LOOPBACK:
        raise ValueError("the replay server is test tooling and binds to the loopback interface only")
    server = _ReplayHTTPServer((host, port), _Handler)
    bound_port = server.server_address[1]
    handler = type("ReplayHandler", (_Handler,), {
        "store": ReplayStore(f"http://{host}:{bound_port}/fhir", **store_dirs),
        "prefix": "/fhir",
    })
    server.RequestHandlerClass = handler
    return server


def base_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/fhir"


@contextlib.contextmanager
def serving(server) -> Iterator[None]:
    """Run ``server`` (a socketserver-style server: ``serve_forever``/``shutdown``/``server_close``) in a
    background thread for the ``with`` block, then stop it and free its port."""
    thread = threading.Thread(target=server.serve_forever, name=f"sandbox-{server.server_address[1]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def running(host: str = "127.0.0.1", port: int = 0, **store_dirs) -> Iterator[str]:
    """Run the replay server in a background thread; yields its FHIR base URL."""
    server = make_server(host, port, **store_dirs)
    with serving(server):
        yield base_url(server)
