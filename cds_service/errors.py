"""Errors the service answers with, and their OperationOutcome bodies.

Exception tree (every class carries an HTTP status and, where one applies, the JSON path at fault)::

    RequestError                     a client-side fault; answered with its status + OperationOutcome
    ├── HookRequestError             400  malformed body: bad JSON, missing/mistyped field, wrong hook ...
    ├── FhirServerNotAllowedError    400  fhirServer names a URL the service may not call (SSRF guard)
    ├── CoverageError                400  no single Coverage of a payer this endpoint serves (CRD hook-13)
    ├── UnknownServiceError          404  no CDS service with that id
    ├── RecordUnavailableError       412  no record data could be obtained at all (CDS Hooks prefetch rules)
    ├── UnsupportedMediaTypeError    415  Content-Type is not JSON
    └── UnsupportedVersionError      422  davinci-crd.requestedVersion names a CRD version we do not declare

    settings.SettingsError           start-up only: a CART_CDS_* variable is invalid (never reaches HTTP)

Werkzeug's own HTTP errors (404 unrouted path, 405 wrong method, 413 body over the limit) get the same
OperationOutcome shape, and so does a body the server cannot read (gunicorn's ``ParseException``s from
a malformed chunked body surface in ``request.get_data``): 400. Anything else is a bug on our side: a
generic 500 OperationOutcome, with no exception text or stack in the body; the log names the exception
type, the route and the code locations (file, line, function) of the traceback, never the exception's
message or any value (``log_safety.describe_exception``), so a 500 can be diagnosed without PHI.
Errors gunicorn answers before the app runs (bad request line, 414, 431) are made JSON by
``gunicorn_errors``.

Error text is written by us, never copied from the request: a message names the path and what was
expected, not the value that was sent (it may be patient data or a token).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, request
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from cds_service.log_safety import EXCEPTION_FIELD, describe_exception

log = logging.getLogger(__name__)

# OperationOutcome.issue.code (http://hl7.org/fhir/issue-type) for each status we answer with.
_ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                412: "incomplete", 413: "too-long", 415: "not-supported", 422: "business-rule", 500: "exception",
                503: "transient"}


class RequestError(Exception):
    """A request the service refuses. ``path`` is the offending JSON path (``context.draftOrders``), if any."""

    status = 400

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path


class HookRequestError(RequestError):
    status = 400


class FhirServerNotAllowedError(RequestError):
    """``fhirServer`` names a URL the service may not call (server-side request forgery guard)."""

    status = 400


class CoverageError(RequestError):
    """CRD hook-13: the primary Coverage is not accessible, has no payer identifier, names a payer this
    endpoint does not serve, or cannot be told apart from other accessible Coverages."""

    status = 400


class UnknownServiceError(RequestError):
    status = 404


class RecordUnavailableError(RequestError):
    """No record data could be obtained at all: no usable prefetch, and no FHIR server answered."""

    status = 412


class UnsupportedMediaTypeError(RequestError):
    status = 415


class UnsupportedVersionError(RequestError):
    status = 422


def operation_outcome(status: int, message: str, path: str | None = None) -> dict:
    """The FHIR OperationOutcome body for an error; ``diagnostics`` starts with the path it names."""
    issue: dict[str, Any] = {
        "severity": "error",
        "code": _ISSUE_CODES.get(status, "processing"),
        "diagnostics": f"{path}: {message}" if path else message,
    }
    if path:
        issue["expression"] = [path]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def error_response(status: int, message: str, path: str | None = None) -> Response:
    return Response(orjson.dumps(operation_outcome(status, message, path)), status=status,
                    mimetype="application/json")


def _request_error(exc: RequestError) -> Response:
    return error_response(exc.status, exc.message, exc.path)


def _http_error(exc: HTTPException) -> Response:
    messages = {
        404: "no such endpoint; the CDS services are listed at /cds-services",
        405: "method not allowed on this endpoint",
        413: "request body is larger than the configured limit",
    }
    status = exc.code or 500
    response = error_response(status, messages.get(status, exc.name))
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _unreadable_body(_exc: Exception) -> Response:
    return error_response(400, "the request body could not be read (malformed HTTP framing, e.g. chunked encoding)")


def _unexpected_error(exc: Exception) -> Response:
    # A constant message plus allow-listed fields; the exception becomes its types and code locations
    # only (log_safety.ScrubFilter): no exception text, no request data.
    rule = request.url_rule.rule if request.url_rule else None
    # The location is computed here rather than passed as exc_info, so that no handler (not ours, not
    # a library's or a test's) can ever render the exception's message.
    log.error("unhandled exception", extra={"reason": type(exc).__name__, "route": rule,
                                            EXCEPTION_FIELD: describe_exception((type(exc), exc, exc.__traceback__))})
    return error_response(500, "internal error; the request was not processed")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(RequestError, _request_error)
    app.register_error_handler(HTTPException, _http_error)
    for unreadable in (ParseException, NoMoreData):  # malformed framing; client gone mid-body
        app.register_error_handler(unreadable, _unreadable_body)
    app.register_error_handler(Exception, _unexpected_error)
