"""JSON bodies for the errors gunicorn answers itself, before the app sees the request.

gunicorn parses the request line and headers itself and, when they break its limits or the HTTP
grammar, answers without calling the app: 400 (bad request line, header or chunked framing), 414
(request line over ``limit_request_line``), 431 (too many or too large headers), 417, 501. Its page
is HTML and quotes the offending input (which may be a URL with patient ids). ``install`` replaces the
writer gunicorn uses for these answers (``gunicorn.util.write_error``, looked up at call time by every
worker) with one that writes the same status as a FHIR OperationOutcome with a fixed message, so every
answer of the service is JSON and none echoes the request.

What this cannot change: gunicorn closes the connection after such an answer, and its own log line
for it ("Invalid request from ip=...") is written by gunicorn's logger with the error text.
"""

from __future__ import annotations

import gunicorn.util
import orjson

from cds_service.errors import operation_outcome

_MESSAGES = {
    400: "the request could not be parsed as HTTP",
    403: "request forbidden",
    414: "the request line is longer than the server accepts",
    417: "expectation failed",
    431: "the request headers are larger than the server accepts",
    501: "transfer coding not supported",
}


def write_json_error(sock, status_int: int, reason: str, _message: str) -> None:
    """Drop-in for ``gunicorn.util.write_error``; the message gunicorn built (it quotes input) is not sent."""
    body = orjson.dumps(operation_outcome(status_int, _MESSAGES.get(status_int, "request not processed")))
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


def install(_server=None) -> None:
    """gunicorn ``on_starting`` hook (runs in the master, so every forked worker inherits it)."""
    gunicorn.util.write_error = write_json_error
