"""Slow clients (issue 17 part 4): with the shipped nginx configuration in front of `cart-cds serve`,
a normal client is served (p99 under 1 s) while 200 connections trickle their headers or bodies.

Everything runs on 127.0.0.1: gunicorn with the production options (gthread workers), nginx from the
Debian package (``nginx-light`` or ``nginx``; ``.ci/run`` installs it) with ``deploy/nginx/cart-cds.conf``
as shipped except for what a test cannot have: the TLS lines, the public port, the log path and the
upstream port. The attack holds its 200 connections open, reopening any the proxy drops, for the
whole measurement; the test takes about 15 s.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.cds_service.served import free_port, served

REPO = Path(__file__).parents[2]
SHIPPED = REPO / "deploy" / "nginx" / "cart-cds.conf"
HOOK = "/cds-services/car-t-coverage"
SLOW_CONNECTIONS = 200
NORMAL_REQUESTS = 60
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def nginx_config(directory: Path, listen_port: int, upstream_port: int) -> Path:
    """nginx.conf for a foreground nginx in ``directory`` serving the shipped site configuration."""
    site = SHIPPED.read_text(encoding="utf-8")
    site = re.sub(r"listen 443 ssl;", f"listen 127.0.0.1:{listen_port};", site)
    site = re.sub(r"(?m)^\s*ssl_\w+ .*\n", "", site)
    site = site.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};")
    site = site.replace("/var/log/nginx/", f"{directory}/")
    (directory / "cart-cds.conf").write_text(site, encoding="utf-8")
    main = directory / "nginx.conf"
    temp_paths = "\n".join(f"    {kind}_temp_path {directory}/{kind}_temp;"
                           for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main.write_text(f"""
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
{"user root;" if _root() else ""}
events {{ worker_connections 2048; }}
http {{
{temp_paths}
    include {directory}/cart-cds.conf;
}}
""", encoding="utf-8")
    return main


def _root() -> bool:
    import os

    return os.geteuid() == 0


class SlowAttack:
    """Holds ``count`` connections open, each sending one byte of its request every ``interval``
    seconds: half trickle their headers, half send headers announcing a 100 kB body and trickle it."""

    def __init__(self, port: int, count: int, interval: float = 0.5) -> None:
        self._port, self._count, self._interval = port, count, interval
        self._sockets: list[tuple[socket.socket, bytes]] = []
        self._stop = threading.Event()
        self.reopened = 0

    def _open(self, index: int) -> tuple[socket.socket, bytes]:
        sock = socket.create_connection(("127.0.0.1", self._port), timeout=5)
        if index % 2:
            sock.sendall(f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Content-Length: 100000\r\n\r\n{".encode())
            return sock, b" "
        sock.sendall(f"POST {HOOK} HTTP/1.1\r\nHost: x\r\n".encode())
        return sock, b"X"

    def __enter__(self) -> SlowAttack:
        self._sockets = [self._open(i) for i in range(self._count)]
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(self._interval):
            for index, (sock, byte) in enumerate(self._sockets):
                try:
                    sock.sendall(byte)
                except OSError:  # dropped by the proxy: a real attacker reconnects
                    sock.close()
                    self._sockets[index] = self._open(index)
                    self.reopened += 1

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        for sock, _ in self._sockets:
            sock.close()


def p99(durations: list[float]) -> float:
    ordered = sorted(durations)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


@pytest.mark.slow
@pytest.mark.loopback_http
@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx-light); "
                                          ".ci/run installs it")
def test_normal_client_is_served_while_200_slow_connections_are_open(tmp_path):
    hook = json.loads((REPO / "tests" / "examples" / "crd221-order-sign-request.json").read_text(encoding="utf-8"))
    upstream = {"CART_CDS_AUTH_DISABLED": "true", "CART_CDS_DATABASE_URL": "sqlite://"}
    with served(upstream, workers=2) as base:
        listen = free_port()
        config = nginx_config(tmp_path, listen, int(base.rsplit(":", 1)[1]))
        proxy = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(config)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proxied = f"http://127.0.0.1:{listen}"
            _wait_for(proxied + "/healthz", proxy)
            with SlowAttack(listen, SLOW_CONNECTIONS) as attack, requests.Session() as session:
                time.sleep(1.0)  # every slow connection has started trickling
                durations = []
                for _ in range(NORMAL_REQUESTS):
                    started = time.monotonic()
                    response = session.post(proxied + HOOK, json=hook, timeout=10)
                    durations.append(time.monotonic() - started)
                    assert response.status_code == 200
                open_at_end = SLOW_CONNECTIONS - attack.reopened
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
    assert p99(durations) < 1.0, sorted(durations)[-5:]
    assert open_at_end > SLOW_CONNECTIONS * 0.9  # the attack really was holding its connections


def _wait_for(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.1)
