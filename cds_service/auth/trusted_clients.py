"""The trusted-clients file: which EHRs may call the service, and how to find their signing keys.

YAML, loaded and validated once at start-up (a bad file stops the start with a message naming the
entry and field)::

    clients:
      - iss: https://sandbox.cds-hooks.org              # required, exact match with the JWT's iss
        jku:                                            # JWKS URLs this client may name in its JWT
          - https://sandbox.cds-hooks.org/.well-known/jwks.json
      - iss: https://ehr.example.org
        jwks: {keys: [{kty: EC, crv: P-384, kid: k1, x: ..., y: ...}]}   # or: keys exchanged out of band
        tenant: 2ddd6c3a-8e9a-44c6-a305-52111ad302a2     # optional: the JWT's tenant must equal it
        fhir_servers: [https://ehr.example.org]         # optional: allowed fhirServer origins
        audiences: [sand_man]                           # optional: extra accepted aud values

Every ``jku`` must be https (plain http only on loopback, for local tooling): a JWKS URL is fetched by
the service, so it is allow-listed here and never taken from a token on trust.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml


class TrustedClientsError(ValueError):
    """The trusted-clients file is unreadable or invalid; the message names the entry and field."""


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_KNOWN_FIELDS = {"iss", "jku", "jwks", "tenant", "fhir_servers", "audiences"}


@dataclass(frozen=True)
class TrustedClient:
    iss: str
    jku: tuple[str, ...] = ()
    jwks: dict | None = None  # inline JWKS (keys exchanged out of band)
    tenant: str | None = None
    fhir_servers: tuple[str, ...] = ()  # allowed fhirServer origins ("scheme://host[:port]"); empty: any
    audiences: tuple[str, ...] = ()  # accepted aud values besides the URL invoked

    def allows_fhir_server(self, url: str) -> bool:
        return not self.fhir_servers or origin_of(url) in self.fhir_servers


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` in lower case, or None when ``url`` is not an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port else "")


def _check_jku(url: object, where: str) -> str:
    if not isinstance(url, str):
        raise TrustedClientsError(f"{where}: must be a URL string")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return url
    raise TrustedClientsError(f"{where}: must be an https URL (http only on loopback)")


def _strings(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TrustedClientsError(f"{where}: must be a string or a list of strings")
    return tuple(value)


def _client(entry: object, index: int) -> TrustedClient:
    where = f"clients[{index}]"
    if not isinstance(entry, dict):
        raise TrustedClientsError(f"{where}: must be a mapping")
    unknown = set(entry) - _KNOWN_FIELDS
    if unknown:
        raise TrustedClientsError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss:
        raise TrustedClientsError(f"{where}.iss: required, a non-empty string")
    jku = tuple(_check_jku(u, f"{where}.jku[{i}]") for i, u in enumerate(_strings(entry.get("jku"), f"{where}.jku")))
    jwks = entry.get("jwks")
    if jwks is not None:
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) and k.get("kid") for k in keys):
            raise TrustedClientsError(f"{where}.jwks: must be a JWKS object whose keys each have a kid")
        if any("d" in k for k in keys):
            raise TrustedClientsError(f"{where}.jwks: holds private key material; give only public keys")
    if not jku and jwks is None:
        raise TrustedClientsError(f"{where}: needs jku URLs or an inline jwks")
    tenant = entry.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise TrustedClientsError(f"{where}.tenant: must be a string")
    origins = []
    for i, url in enumerate(_strings(entry.get("fhir_servers"), f"{where}.fhir_servers")):
        origin = origin_of(url)
        if origin is None:
            raise TrustedClientsError(f"{where}.fhir_servers[{i}]: must be an http(s) URL")
        origins.append(origin)
    return TrustedClient(
        iss=iss,
        jku=jku,
        jwks=jwks,
        tenant=tenant,
        fhir_servers=tuple(origins),
        audiences=_strings(entry.get("audiences"), f"{where}.audiences"),
    )


class TrustedClients:
    """The allow-list of client issuers, looked up by the JWT's ``iss``."""

    def __init__(self, clients: list[TrustedClient]) -> None:
        self._by_iss: dict[str, TrustedClient] = {}
        for client in clients:
            if client.iss in self._by_iss:
                raise TrustedClientsError(f"iss {client.iss!r} is listed twice")
            self._by_iss[client.iss] = client

    def get(self, iss: object) -> TrustedClient | None:
        return self._by_iss.get(iss) if isinstance(iss, str) else None

    def __len__(self) -> int:
        return len(self._by_iss)

    def __iter__(self):
        return iter(self._by_iss.values())

    @classmethod
    def from_mapping(cls, data: object) -> TrustedClients:
        if not isinstance(data, dict) or not isinstance(data.get("clients"), list):
            raise TrustedClientsError("top level: must be a mapping with a 'clients' list")
        return cls([_client(entry, i) for i, entry in enumerate(data["clients"])])

    @classmethod
    def load(cls, path: str | Path) -> TrustedClients:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise TrustedClientsError(f"cannot read trusted-clients file {path}: {type(exc).__name__}") from exc
        try:
            return cls.from_mapping(data)
        except TrustedClientsError as exc:
            raise TrustedClientsError(f"{path}: {exc}") from None
