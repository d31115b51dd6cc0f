"""CRD sec-2/sec-3: ``cart-cds serve`` terminates TLS itself (minimum TLS 1.2) when given a certificate and
key; the certificate is a self-signed one made for the test."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cds_service.gunicorn_conf import production_options
from cds_service.settings import Settings, SettingsError
from tests.cds_service.conftest import TEST_ENVIRONMENT


def self_signed(directory) -> tuple:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_tls_settings_go_to_gunicorn_with_a_tls_1_2_minimum(tmp_path):
    cert_file, key_file = self_signed(tmp_path)
    options = production_options(Settings(tls_cert_file=cert_file, tls_key_file=key_file))

    assert (options["certfile"], options["keyfile"]) == (str(cert_file), str(key_file))
    context = options["ssl_context"](None, lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert "certfile" not in production_options(Settings())  # plain HTTP behind a reverse proxy


def test_certificate_and_key_are_set_together(tmp_path):
    cert_file, _ = self_signed(tmp_path)
    with pytest.raises(SettingsError, match="TLS_CERT_FILE and CART_CDS_TLS_KEY_FILE must be set together"):
        Settings(tls_cert_file=cert_file)
    with pytest.raises(SettingsError, match="CART_CDS_TLS_KEY_FILE: must name an existing file"):
        Settings.from_env({"CART_CDS_TLS_CERT_FILE": str(cert_file), "CART_CDS_TLS_KEY_FILE": str(tmp_path / "no")})


@pytest.mark.slow
@pytest.mark.loopback_http
def test_cart_cds_serve_answers_over_tls_1_2_or_later(tmp_path):
    cert_file, key_file = self_signed(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, **TEST_ENVIRONMENT, "CART_CDS_BIND": f"127.0.0.1:{port}", "CART_CDS_WORKERS": "1",
           "CART_CDS_TLS_CERT_FILE": str(cert_file), "CART_CDS_TLS_KEY_FILE": str(key_file)}
    server = subprocess.Popen([sys.executable, "-m", "cds_service", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = ssl.create_default_context(cafile=str(cert_file))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                        client.wrap_socket(raw, server_hostname="localhost") as tls:
                    version = tls.version()
                    tls.sendall(b"GET /cds-services HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    reply = tls.recv(4096)
                break
            except (ConnectionRefusedError, ConnectionResetError, ssl.SSLError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert version in ("TLSv1.2", "TLSv1.3")
        assert reply.startswith(b"HTTP/1.1 200")
    finally:
        server.terminate()
        server.wait(timeout=10)
