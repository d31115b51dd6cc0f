"""PHI-safe structured logging: JSON lines built from an allow-list of fields, nothing else.

Why an allow-list rather than a deny-list: a hook call carries a complete oncology record and a bearer
token to the EHR, and no pattern can recognise every name, birth date or identifier. So a log line holds
only the message *template* (never its interpolated arguments), the fields named in ``ALLOWED_FIELDS``
whose values pass a strict shape check, and, for exceptions, the exception types and code locations
without their messages (``KeyError('Jane Doe')`` would otherwise leak the name).

``ScrubFilter`` does the scrubbing on the record itself, so every handler after it sees the scrubbed
record; ``JsonFormatter`` renders it. ``configure_logging`` installs both on the root logger.

Usage: ``log.info("hook answered", extra={"hookInstance": hi, "status": 200, "duration_ms": 12.5})``.
Message strings must be constants; anything variable goes in an allowed field.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from typing import IO, Any

import orjson

# field name -> kind of value accepted
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+#=-]{0,199}$")  # ids, URLs without spaces, codes
_UUIDISH = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_ROUTE = re.compile(r"^/[A-Za-z0-9/_<>.:-]{0,200}$")  # a URL rule such as /cds-services/<service_id>
ALLOWED_FIELDS: dict[str, str] = {
    "hookInstance": "uuid",
    "service": "code",
    "client": "code",  # the client's iss
    "tenant": "code",
    "jti": "code",
    "kid": "code",
    "alg": "code",
    "reason": "code",  # a short reason code chosen by our code, e.g. "expired"
    "method": "code",
    "route": "route",  # the URL rule (e.g. /cds-services/<service_id>), never the raw path
    "status": "number",
    "duration_ms": "number",
    "count": "number",
    "timings": "numbers",  # {"retrieval_ms": 12.0, ...}
    "counts": "numbers",  # {"draftOrders": 2, ...}
    "verdict": "code",
    "verdicts": "codes",
    "criteria": "codes",  # criterion ids
    "policy": "code",
    "policyVersion": "code",
    "auditId": "number",
    "failures": "number",
    "fact": "code",  # the name of a fact that could not be read (never its data)
    "resourceType": "code",  # a FHIR resource type name (never an id or a URL)
    "bytes": "number",
    "remaining_ms": "number",
}
SCRUBBED = "[scrubbed]"
EXCEPTION_FIELD = "cart_cds_exception"  # record attribute: ``describe_exception`` of the record's exception
_MAX_ITEMS = 100


def _safe_code(value: Any, pattern: re.Pattern = _CODE) -> Any:
    if isinstance(value, str) and pattern.match(value):
        return value
    if isinstance(value, bool) or value is None:
        return value
    return SCRUBBED


def _safe_number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) else SCRUBBED


def safe_value(kind: str, value: Any) -> Any:
    """The value as it may be logged, or ``SCRUBBED`` when it does not have the expected shape."""
    if kind == "uuid":
        return _safe_code(value, _UUIDISH)
    if kind == "code":
        return _safe_code(value)
    if kind == "route":
        return _safe_code(value, _ROUTE)
    if kind == "number":
        return _safe_number(value)
    if kind == "codes":
        if isinstance(value, (list, tuple, set, frozenset)):
            return [_safe_code(v) for v in list(value)[:_MAX_ITEMS]]
        return SCRUBBED
    if kind == "numbers":
        if isinstance(value, dict):
            return {
                k: _safe_number(v) for k, v in list(value.items())[:_MAX_ITEMS] if isinstance(k, str) and _CODE.match(k)
            }
        return SCRUBBED
    return SCRUBBED


def describe_exception(exc_info) -> dict:
    """Exception types (with causes) and the code locations of the traceback, without any message."""
    _, exc, tb = exc_info
    types: list[str] = []
    seen = set()
    current = exc
    while current is not None and id(current) not in seen and len(types) < 10:
        seen.add(id(current))
        types.append(type(current).__qualname__)
        current = current.__cause__ or current.__context__
    frames = [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)[-15:]]
    return {"types": types, "frames": frames}


class ScrubFilter(logging.Filter):
    """Removes everything that could carry patient data or tokens from a log record, in place.

    Interpolation arguments are dropped (the message stays a template), exception and stack text are
    replaced by ``describe_exception``, and extra attributes outside the allow-list are not rendered.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_cart_cds_scrubbed", False):
            return True
        if not isinstance(record.msg, str):
            record.msg = type(record.msg).__name__
        record.args = ()
        if record.exc_info and record.exc_info[1] is not None:
            setattr(record, EXCEPTION_FIELD, describe_exception(record.exc_info))
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        record._cart_cds_scrubbed = True
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event (the message template) and allowed fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "event": record.msg if isinstance(record.msg, str) else type(record.msg).__name__,
        }
        for name, kind in ALLOWED_FIELDS.items():
            if name in record.__dict__:
                out[name] = safe_value(kind, record.__dict__[name])
        exception = record.__dict__.get(EXCEPTION_FIELD)
        if exception:
            out["exception"] = exception
        return orjson.dumps(out).decode()


_HANDLER_NAME = "cart-cds-json"


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Route all logging (ours, Flask's, libraries') through the scrubbing JSON handler on the root logger.

    Idempotent: a handler installed by an earlier call is replaced, so calling ``create_app`` twice does
    not duplicate lines. Returns the handler (tests read what it wrote).
    """
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(ScrubFilter())
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
