"""Loopback FHIR fakes for the retrieval benchmarks (127.0.0.1 only, test tooling).

- ``delayed_replay(delay)``: the sandbox replay server answering every request ``delay`` seconds late
  (a slow EHR: what the parallel fallback queries and their shared deadline are for);
- ``hanging()``: a server that accepts connections and reads requests but never answers (a stuck EHR:
  what the per-hook FHIR deadline is for).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator

from sandbox.replay_server import base_url, make_server


class QueryCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1


@contextlib.contextmanager
def delayed_replay(delay: float) -> Iterator[tuple[str, QueryCounter]]:
    """(FHIR base URL, query counter) of a replay server that sleeps ``delay`` s before each answer."""
    server = make_server("127.0.0.1", 0)
    counter = QueryCounter()
    plain = server.RequestHandlerClass

    def do_get(handler) -> None:
        counter.add()
        time.sleep(delay)
        plain.do_GET(handler)

    server.RequestHandlerClass = type("DelayedReplayHandler", (plain,), {"do_GET": do_get})
    thread = threading.Thread(target=server.serve_forever, name="bench-delayed-replay", daemon=True)
    thread.start()
    try:
        yield base_url(server), counter
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def hanging() -> Iterator[str]:
    """The FHIR base URL of a server that never answers (connections are accepted and left open)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, name="bench-hanging-fhir", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/fhir"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()
