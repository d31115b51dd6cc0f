"""The fhirServer SSRF guard: what it refuses, what configuration admits, and that it never needs DNS
in tests (the resolver is a parameter)."""

from __future__ import annotations

import pytest

from cds_service.retrieval.fhir_server_guard import FhirServerRefused, check_fhir_server, origin_of

PUBLIC = {"ehr.example.org": ["93.184.216.34"], "fhir.hospital.example": ["2606:4700::6810:84e5"]}


def resolver(table=None):
    table = PUBLIC if table is None else table

    def resolve(host):
        if host not in table:
            raise OSError("unknown host")
        return table[host]

    return resolve


def refused(url, **kwargs) -> FhirServerRefused:
    kwargs.setdefault("resolve", resolver())
    with pytest.raises(FhirServerRefused) as caught:
        check_fhir_server(url, **kwargs)
    assert caught.value.field == "fhirServer"
    assert str(caught.value).startswith("fhirServer refused: ")
    return caught.value


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://169.254.169.254/", "scheme"),
        ("https://169.254.169.254/latest/meta-data", "address"),
        ("file:///etc/passwd", "scheme"),
        ("http://10.0.0.1", "scheme"),
        ("https://10.0.0.1/fhir", "address"),
        ("https://172.16.5.4/fhir", "address"),
        ("https://192.168.1.1/fhir", "address"),
        ("https://[fc00::1]/fhir", "address"),
        ("https://[fe80::1]/fhir", "address"),
        ("https://[::ffff:10.0.0.1]/fhir", "address"),
        ("https://127.0.0.1/fhir", "address"),
        ("https://localhost/fhir", "address"),
        ("https://0.0.0.0/fhir", "address"),
        ("https://100.64.0.1/fhir", "address"),
        ("https://224.0.0.1/fhir", "address"),
        ("ftp://ehr.example.org/fhir", "scheme"),
        ("gopher://ehr.example.org/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("https://good@evil.example/fhir", "userinfo"),
        ("https://ehr.example.org:443@169.254.169.254/", "userinfo"),
        ("https://metadata.google.internal/computeMetadata/v1/", "address"),
        ("https://2130706433/fhir", "host"),
        ("https://0x7f.1/fhir", "host"),
        ("https://intranet/fhir", "host"),
        ("https://does-not-resolve.example/fhir", "host"),
        ("https://ehr.example.org/fhir?x=1", "invalid"),
        ("https://ehr.example.org/fhir#frag", "invalid"),
        ("https://ehr.example.org\\@evil.example/", "invalid"),
        ("https://ehr.example.org/fh ir", "invalid"),
        ("https://ehr.example.org:99999/fhir", "invalid"),
        ("/fhir", "scheme"),
        ("", "invalid"),
    ],
)
def test_refuses_dangerous_or_odd_servers(url, reason):
    error = refused(url)
    assert error.reason == reason
    assert url not in str(error) or url == ""  # the message never echoes the hostile value


def test_refuses_non_string():
    assert refused(["https://ehr.example.org"]).reason == "invalid"


def test_refuses_public_name_resolving_to_private_address():
    rebinding = resolver({"ehr.example.org": ["93.184.216.34", "10.1.2.3"]})
    assert refused("https://ehr.example.org/fhir", resolve=rebinding).reason == "address"


def test_accepts_public_https_server_and_reports_origin():
    server = check_fhir_server("https://EHR.example.org/fhir/R4/", resolve=resolver())
    assert server.base_url == "https://EHR.example.org/fhir/R4"
    assert server.origin == "https://ehr.example.org:443"
    assert check_fhir_server("https://fhir.hospital.example:8443/r4", resolve=resolver()).origin == (
        "https://fhir.hospital.example:8443"
    )


def test_allow_listed_host_may_be_private_and_plain_http():
    def no_dns(host):
        raise AssertionError("an allow-listed host needs no resolution")

    server = check_fhir_server("http://fhir.internal.example/r4", allowed_hosts=["FHIR.internal.example"], resolve=no_dns)
    assert server.origin == "http://fhir.internal.example:80"
    assert check_fhir_server("https://10.0.0.1/fhir", allowed_hosts=["10.0.0.1"], resolve=no_dns)
    assert check_fhir_server("http://fhir.internal.example:8080/r4", allowed_hosts=["fhir.internal.example:8080"], resolve=no_dns)
    with pytest.raises(FhirServerRefused):  # the entry names another port
        check_fhir_server("http://fhir.internal.example:9090/r4", allowed_hosts=["fhir.internal.example:8080"], resolve=no_dns)


def test_loopback_only_with_development_setting():
    refused("http://127.0.0.1:8080/fhir")
    refused("http://localhost:8080/fhir")
    assert check_fhir_server("http://127.0.0.1:8080/fhir", allow_loopback=True, resolve=resolver())
    assert check_fhir_server("http://localhost:8080/fhir", allow_loopback=True, resolve=resolver())
    # the development setting admits loopback only, not other private or link-local addresses
    assert refused("http://169.254.169.254/", allow_loopback=True).reason == "scheme"
    assert refused("https://10.0.0.1/", allow_loopback=True).reason == "address"


def test_client_origin_list_is_enforced_when_set():
    origins = ["https://ehr.example.org"]
    assert check_fhir_server("https://ehr.example.org/fhir", client_origins=origins, resolve=resolver())
    assert check_fhir_server("https://ehr.example.org:443/other", client_origins=origins, resolve=resolver())
    assert refused("https://fhir.hospital.example/r4", client_origins=origins).reason == "not-allowed"
    assert refused("https://ehr.example.org:8443/fhir", client_origins=origins).reason == "not-allowed"
    assert refused("http://ehr.example.org/fhir", client_origins=origins).reason == "not-allowed"
    # an empty list means "no per-client restriction"
    assert check_fhir_server("https://fhir.hospital.example/r4", client_origins=[], resolve=resolver())


def test_client_origin_admits_its_private_server():
    server = check_fhir_server("https://10.9.8.7/fhir", client_origins=["https://10.9.8.7"], resolve=resolver({}))
    assert server.origin == "https://10.9.8.7:443"


@pytest.mark.parametrize(
    "url, origin",
    [
        ("https://Ehr.Example.org./fhir/Patient?x=1", "https://ehr.example.org:443"),
        ("http://h.example:8080/x", "http://h.example:8080"),
        ("https://[::1]/fhir", "https://[::1]:443"),
        ("https://u@h.example/", None),
        ("ftp://h.example/", None),
        ("Patient/123", None),
    ],
)
def test_origin_of(url, origin):
    assert origin_of(url) == origin
