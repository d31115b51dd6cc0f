"""Loopback FHIR fakes for the retrieval benchmarks (127.0.0.1 only, test tooling).

- ``delayed_replay(delay)``: the sandbox replay server answering every request ``delay`` seconds late
  (a slow EHR: what the parallel fallback queries and their shared deadline are for). It answers from
  the sandbox patients, not from the recorded responses: those replay the paginated scenarios' HAPI
  pages of 3 whatever ``_count`` asks, a paging test, not a typical server (HAPI honours ``_count`` up
  to its maximum page size). It speaks HTTP/1.1 keep-alive and counts the TCP connections opened, so
  the benchmark shows whether the service reuses its pooled connections;
- ``hanging()``: a server that accepts connections and reads requests but never answers (a stuck EHR:
  what the per-hook FHIR deadline is for);
- ``tripwire()``: a server that counts and drops connections (the in-process runs must make none).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from sandbox.replay_server import base_url, make_server, serving


class QueryCounter:
    """Requests answered (``count``) and distinct client connections they came on (``connections``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self._peers: set[tuple] = set()

    def add(self, peer: tuple) -> None:
        with self._lock:
            self.count += 1
            self._peers.add(peer)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._peers)


@contextlib.contextmanager
def delayed_replay(delay: float) -> Iterator[tuple[str, QueryCounter]]:
    """(FHIR base URL, query counter) of a replay server that sleeps ``delay`` s before each answer."""
    server = make_server("127.0.0.1", 0, recorded_dir=None)
    counter = QueryCounter()
    plain = server.RequestHandlerClass

    def do_get(handler) -> None:
        counter.add(handler.client_address)
        time.sleep(delay)
        plain.do_GET(handler)

    server.RequestHandlerClass = type("DelayedReplayHandler", (plain,), {"do_GET": do_get})
    with serving(server):
        yield base_url(server), counter


@contextlib.contextmanager
def hanging() -> Iterator[str]:
    """The FHIR base URL of a server that never answers (connections are accepted and left open)."""
    held: list[socket.socket] = []
    try:
        with _listener(held.append) as base:
            yield base
    finally:
        for connection in held:
            connection.close()


@contextlib.contextmanager
def tripwire() -> Iterator[tuple[str, list[socket.socket]]]:
    """(FHIR base URL, connections seen) of a server that drops every connection: in-process hooks point
    their ``fhirServer`` here, so any network call they make is counted (and fails, which their
    verdicts would show)."""
    seen: list[socket.socket] = []

    def drop(connection: socket.socket) -> None:
        seen.append(connection)
        connection.close()

    with _listener(drop) as base:
        yield base, seen


@contextlib.contextmanager
def _listener(on_connection) -> Iterator[str]:
    """A loopback listener handing each accepted connection to ``on_connection``; yields its FHIR base."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            on_connection(connection)

    thread = threading.Thread(target=accept, name="bench-fhir-listener", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/fhir"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
