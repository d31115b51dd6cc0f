"""Run ``cart-cds serve`` (gunicorn, several workers) on a free loopback port for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import requests

from tests.cds_service.conftest import TEST_ENVIRONMENT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(environment: dict[str, str], *, port: int | None = None, workers: int = 2,
           ready_path: str = "/healthz") -> Iterator[str]:
    """The service's base URL (``http://127.0.0.1:PORT``) while it runs with ``environment`` added (over the
    sandbox payer as the one served, which a production start requires)."""
    port = port or free_port()
    env = {**os.environ, "CART_CDS_PAYER_IDENTIFIERS": TEST_ENVIRONMENT["CART_CDS_PAYER_IDENTIFIERS"], **environment,
           "CART_CDS_BIND": f"127.0.0.1:{port}", "CART_CDS_WORKERS": str(workers)}
    server = subprocess.Popen([sys.executable, "-m", "cds_service", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + ready_path, timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
