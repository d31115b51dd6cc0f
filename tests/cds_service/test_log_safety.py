"""PHI-safe logging: only allow-listed fields of the right shape reach the log, never arguments,
exception messages or extra attributes."""

from __future__ import annotations

import io
import json
import logging

import pytest

from cds_service.log_safety import SCRUBBED, configure_logging

NAME = "Marguerite Okonkwo-Delacroix"
BIRTH = "1958-07-14"
MRN = "MRN-99887766"
TOKEN = "eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.fixture
def log_stream():
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_arguments_are_never_interpolated(log_stream):
    logging.getLogger("cds_service.x").info("patient %s born %s", NAME, BIRTH)
    text = log_stream.getvalue()
    assert NAME not in text and BIRTH not in text
    assert lines(log_stream)[0]["event"] == "patient %s born %s"


def test_allowed_fields_are_kept_and_others_dropped(log_stream):
    logging.getLogger("cds_service.x").info("hook answered", extra={
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "status": 200, "duration_ms": 12.5,
        "verdicts": ["meets-policy"], "criteria": ["I.A.1", "I.A.4.a.i"], "client": "https://ehr.example.org",
        "patient_name": NAME, "body": {"name": NAME}, "token": TOKEN})
    line = lines(log_stream)[0]
    assert line["hookInstance"] == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
    assert line["status"] == 200 and line["criteria"] == ["I.A.1", "I.A.4.a.i"]
    assert "patient_name" not in line and "body" not in line and "token" not in line
    assert NAME not in log_stream.getvalue() and TOKEN not in log_stream.getvalue()


@pytest.mark.parametrize("field, value", [
    ("hookInstance", NAME), ("client", f"{NAME}"), ("reason", "Jane Doe has it"), ("status", "200"),
    ("criteria", [NAME]), ("timings", {"retrieval ms": 1, "x": "slow"}),
])
def test_allowed_fields_with_unexpected_values_are_scrubbed(log_stream, field, value):
    logging.getLogger("t").warning("event", extra={field: value})
    rendered = lines(log_stream)[0][field]
    assert NAME not in json.dumps(rendered) and "Jane Doe" not in json.dumps(rendered)
    assert SCRUBBED in json.dumps(rendered) or rendered == {}


def test_exception_messages_and_locals_are_not_logged(log_stream):
    try:
        patient = {"name": NAME, "identifier": MRN}
        raise KeyError(f"{patient['name']} {patient['identifier']}")
    except KeyError:
        logging.getLogger("cds_service.x").exception("lookup failed")
    text = log_stream.getvalue()
    assert NAME not in text and MRN not in text
    exception = lines(log_stream)[0]["exception"]
    assert exception["types"] == ["KeyError"]
    assert exception["frames"] and "test_log_safety.py" in exception["frames"][-1]


def test_chained_exception_types_are_reported(log_stream):
    try:
        try:
            raise ValueError(BIRTH)
        except ValueError as inner:
            raise RuntimeError(TOKEN) from inner
    except RuntimeError:
        logging.getLogger("x").error("failed", exc_info=True)
    assert lines(log_stream)[0]["exception"]["types"] == ["RuntimeError", "ValueError"]
    assert BIRTH not in log_stream.getvalue() and TOKEN not in log_stream.getvalue()


def test_non_string_messages_are_reduced_to_their_type(log_stream):
    logging.getLogger("x").info({"name": NAME})
    assert lines(log_stream)[0]["event"] == "dict"


def test_library_loggers_go_through_the_same_filter(log_stream):
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s', "https", "ehr.example", 443, "GET", f"/Patient?identifier={MRN}", "HTTP/1.1", 200)
    assert MRN not in log_stream.getvalue()


def test_configure_logging_is_idempotent(log_stream):
    configure_logging("INFO", stream=log_stream)
    logging.getLogger("x").info("once")
    assert len(lines(log_stream)) == 1
