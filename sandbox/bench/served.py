"""Served throughput: ``cart-cds serve`` (gunicorn, production settings) on 127.0.0.1 and a bounded
load generator (threads, one keep-alive ``http.client`` connection each; a fixed request count and a
maximum duration), next to the same gunicorn settings serving ``echo`` (parse + echo of the same body).

The load generator runs on the same 2-core machine as the server, so its own CPU use is part of what is
measured; it is kept light (stdlib HTTP, no per-request allocation beyond the response) for that reason.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sandbox.bench.inprocess import Latency
from sandbox.catalog import SANDBOX_PAYER_IDENTIFIER

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def server_environment(database: Path, port: int) -> dict[str, str]:
    """The service's environment for served runs: loopback bind, client JWT checks off (stated in the
    results), an audit database file of its own, warnings-only logs, no access log noise on stdout."""
    env = dict(os.environ)
    env.update({
        "CART_CDS_BIND": f"{LOOPBACK}:{port}",
        "CART_CDS_AUTH_DISABLED": "true",
        "CART_CDS_DATABASE_URL": f"sqlite:///{database}",
        "CART_CDS_LOG_LEVEL": "warning",
        "CART_CDS_ALLOW_LOOPBACK_FHIR": "true",
        "CART_CDS_FHIR_OPEN_HOSTS": LOOPBACK,  # the FHIR fakes: the bench hooks send no fhirAuthorization
        "CART_CDS_PAYER_IDENTIFIERS": "|".join(SANDBOX_PAYER_IDENTIFIER),  # a production start needs its payers
    })
    return env


@contextmanager
def serving(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    """Start a gunicorn process, wait for ``/healthz``, yield it; stop it with SIGTERM afterwards."""
    with open(log, "ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(port, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def service_command() -> list[str]:
    return [sys.executable, "-m", "cds_service", "serve"]


def echo_command(port: int) -> list[str]:
    return [sys.executable, "-m", "sandbox.bench.echo", "--bind", f"{LOOPBACK}:{port}"]


def _wait_healthy(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} (see its log)")
        try:
            connection = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not become healthy in time")


def worker_pids(master: int) -> list[int]:
    """gunicorn worker processes: the children of the master (Linux /proc)."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latency: Latency

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def load(port: int, path: str, body: bytes, *, concurrency: int, requests: int, max_seconds: float) -> LoadResult:
    """Send ``requests`` POSTs (fewer if ``max_seconds`` runs out) from ``concurrency`` threads."""
    lock = threading.Lock()
    remaining = [requests]
    samples: list[float] = []
    errors = [0]
    deadline = time.monotonic() + max_seconds
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}

    def take() -> bool:
        with lock:
            if remaining[0] <= 0 or time.monotonic() > deadline:
                return False
            remaining[0] -= 1
            return True

    def run() -> None:
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
        mine, failed = [], 0
        while take():
            started = time.perf_counter()
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    failed += 1
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
                connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
            mine.append((time.perf_counter() - started) * 1000)
        connection.close()
        with lock:
            samples.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return LoadResult(concurrency, len(samples), errors[0], elapsed, Latency(tuple(sorted(samples))))
