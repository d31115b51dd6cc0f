"""Server-side request forgery guard for the ``fhirServer`` a hook request names.

The EHR tells us where to fetch the record, and we call that URL with the EHR's bearer token. A hostile
or mistaken request could point us at the cloud metadata service, an internal admin port or a file, so
the URL is checked before any request is made:

- only ``https`` (``http`` only for an allow-listed host, or loopback when development allows it);
- no userinfo (``https://good@evil/``), no query or fragment, no control characters or odd host
  spellings (``0x7f.1``, ``2130706433``, single-label names);
- the host, or every address it resolves to, must be a public address: loopback, private
  (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10), shared, reserved and
  multicast ranges and known metadata host names are refused;
- when a per-client list of FHIR server origins is configured, the origin must be on it.

A host in ``allowed_hosts`` or an origin on the client's list is trusted by configuration and skips the
address checks (that is how a hospital's internal FHIR server is admitted). Refusals raise
``FhirServerRefused``, which the route maps to 400 naming ``fhirServer``; the message never repeats the
URL. The resolver is a parameter so tests never touch the network.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str], Iterable[str]]

METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")


class FhirServerRefused(ValueError):
    """``fhirServer`` is not a URL we may call. ``reason`` is a short code, ``str()`` a safe message."""

    field = "fhirServer"

    def __init__(self, reason: str, message: str):
        super().__init__(f"fhirServer refused: {message}")
        self.reason = reason


@dataclass(frozen=True)
class FhirServer:
    """A checked FHIR base URL and its origin (scheme, lower-case host, explicit port)."""

    base_url: str
    origin: str


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` with the default port made explicit; None for anything that is not
    an absolute http(s) URL. Used to keep paging links and redirects on the ``fhirServer`` origin."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or DEFAULT_PORTS[scheme]}"


def system_resolver(host: str) -> list[str]:
    """Every address ``host`` resolves to (the production resolver)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]


def check_fhir_server(
    url: object,
    *,
    allowed_hosts: Iterable[str] = (),
    client_origins: Iterable[str] | None = None,
    allow_loopback: bool = False,
    resolve: Resolver = system_resolver,
) -> FhirServer:
    """Return the checked server or raise ``FhirServerRefused``.

    ``allowed_hosts``: host names or IP literals, optionally ``host:port``, trusted by configuration
    (``FHIR_ALLOWED_HOSTS``).
    ``client_origins``: the calling client's permitted origins; enforced when not None/empty.
    ``allow_loopback``: development setting (``ALLOW_LOOPBACK_FHIR``) admitting localhost over http.
    """
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise FhirServerRefused("invalid", "must be an absolute https URL")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F or ch == "\\" for ch in url):
        raise FhirServerRefused("invalid", "contains whitespace, control or backslash characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FhirServerRefused("invalid", "is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise FhirServerRefused("scheme", "only https URLs are accepted")
    if "@" in parts.netloc:
        raise FhirServerRefused("userinfo", "must not contain user information")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise FhirServerRefused("invalid", "must be a base URL without query or fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FhirServerRefused("invalid", "has no host")
    origin = origin_of(url)
    if origin is None or port == 0:
        raise FhirServerRefused("invalid", "is not a valid URL")
    server = FhirServer(base_url=url.rstrip("/"), origin=origin)

    client_list = {o for o in (origin_of(o) for o in client_origins or ()) if o}
    if client_origins and origin not in client_list:
        raise FhirServerRefused("not-allowed", "is not an allowed FHIR server for this client")
    allowed = {h.strip().lower().rstrip(".") for h in allowed_hosts}
    if host in allowed or f"{host}:{port or DEFAULT_PORTS[scheme]}" in allowed or origin in client_list:
        return server

    loopback_ok = allow_loopback and _is_loopback_host(host)
    if scheme != "https" and not loopback_ok:
        raise FhirServerRefused("scheme", "must use https")
    if host in METADATA_HOSTS:
        raise FhirServerRefused("address", "names a metadata service")
    for address in _addresses(host, resolve):
        if not _public(address) and not (allow_loopback and address.is_loopback):
            raise FhirServerRefused("address", "resolves to a private, loopback or link-local address")
    return server


def _is_loopback_host(host: str) -> bool:
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    literal = _ip_literal(host)
    return literal is not None and literal.is_loopback


def _addresses(host: str, resolve: Resolver) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    literal = _ip_literal(host)
    if literal is not None:
        return [literal]
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    top_label = host.rsplit(".", 1)[-1]
    if not _HOST_NAME.fullmatch(host) or top_label.isdigit() or top_label.startswith("0x"):
        raise FhirServerRefused("host", "has an unusual host name")
    try:
        resolved = [_ip_literal(str(a).split("%")[0]) for a in resolve(host)]
    except (OSError, UnicodeError):
        raise FhirServerRefused("host", "host name does not resolve") from None
    if not resolved or None in resolved:
        raise FhirServerRefused("host", "host name does not resolve")
    return resolved  # type: ignore[return-value]


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and not address.is_multicast
