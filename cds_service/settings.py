"""Service settings: one frozen ``Settings`` built from ``CART_CDS_*`` environment variables.

Every value is typed and validated when the service starts (``Settings.from_env``), so a typo stops the
start with a message naming the variable instead of surfacing as a wrong answer at request time. Error
messages never repeat the value itself: URLs such as ``DATABASE_URL`` may hold passwords.

``SETTINGS`` below is the single declaration: variable name, parser, default and the sentence the README's
settings table is written from. Tests build ``Settings(...)`` directly with the values they need.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from flask import current_app

log = logging.getLogger(__name__)
PREFIX = "CART_CDS_"
CONFIG_KEY = "CART_CDS_SETTINGS"  # where create_app keeps the Settings in ``app.config``


class SettingsError(ValueError):
    """One or more ``CART_CDS_*`` variables are invalid; the message names each of them."""


# --- parsers: text -> typed value, raising ValueError with a message that does not echo the value ---


def _text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _optional_text(raw: str) -> str | None:
    return raw.strip() or None


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0 < value < 3600:  # also rejects nan and inf
        raise ValueError("must be greater than 0 and less than 3600")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError("must be one of " + ", ".join(allowed))
        return value

    return parse


def _items(raw: str, separator: str = ",") -> list[str]:
    return [item.strip() for item in raw.split(separator) if item.strip()]


def _origins(raw: str) -> tuple[str, ...]:
    origins = []
    for item in _items(raw):
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError("each origin must look like https://host[:port] (no path, no wildcard)")
        origins.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(origins)


_HOST = re.compile(r"[a-z0-9]([a-z0-9\-.]*[a-z0-9])?(:\d{1,5})?")


def _hosts(raw: str) -> tuple[str, ...]:
    hosts = tuple(item.lower() for item in _items(raw))
    for host in hosts:
        if not _HOST.fullmatch(host) and not _is_ip_literal(host):
            raise ValueError("each entry must be a host name or IP address, optionally with :port")
    return hosts


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _url(schemes: tuple[str, ...]) -> Callable[[str], str | None]:
    def parse(raw: str) -> str | None:
        value = raw.strip()
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ValueError("must be a URL starting with " + " or ".join(f"{s}://" for s in schemes))
        return value.rstrip("/")

    return parse


def _existing(kind: str, exists: Callable[[Path], bool]) -> Callable[[str], Path | None]:
    def parse(raw: str) -> Path | None:
        value = raw.strip()
        if not value:
            return None
        path = Path(value).expanduser()
        if not exists(path):
            raise ValueError(f"must name an existing {kind}")
        return path

    return parse


_existing_file = _existing("file", Path.is_file)
_existing_directory = _existing("directory", Path.is_dir)


def _json_table(raw: str) -> Path | None:
    path = _existing_file(raw)
    if path is not None:
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError("must name a readable JSON file") from None
    return path


_POLICY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")


def _policy_pairs(raw: str) -> list[tuple[str, str]]:
    pairs = []
    for item in _items(raw):
        policy, sep, value = item.partition("=")
        if not sep or not _POLICY_ID.fullmatch(policy.strip()) or not value.strip():
            raise ValueError("each entry must look like POLICY-ID=value, entries separated by commas")
        pairs.append((policy.strip(), value.strip()))
    return pairs


def _policy_links(raw: str) -> Mapping[str, str]:
    links = {}
    for policy, url in _policy_pairs(raw):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"the link for {policy} must be an absolute https URL")
        links[policy] = url
    return MappingProxyType(links)


def _product_codes(raw: str) -> Mapping[str, tuple[tuple[str, str], ...]]:
    codes: dict[str, tuple[tuple[str, str], ...]] = {}
    for policy, value in _policy_pairs(raw):
        pairs = []
        for coding in _items(value, ";"):
            system, sep, code = coding.partition("|")
            if not sep or not system.strip() or not code.strip():
                raise ValueError(f"the codes for {policy} must look like system|code;system|code")
            pairs.append((system.strip(), code.strip()))
        codes[policy] = codes.get(policy, ()) + tuple(pairs)
    return MappingProxyType(codes)


def _payer_identifiers(raw: str) -> tuple[tuple[str, str], ...]:
    identifiers = []
    for item in _items(raw):
        system, sep, value = item.partition("|")
        if not sep or not system.strip() or not value.strip():
            raise ValueError("each entry must look like system|value, entries separated by commas")
        identifiers.append((system.strip(), value.strip()))
    return tuple(identifiers)


_BIND = re.compile(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9\-.]+):(\d{1,5})|unix:/.+")


def _bind(raw: str) -> str:
    value = raw.strip()
    match = _BIND.fullmatch(value)
    if not match or (match.group(2) and not 0 < int(match.group(2)) < 65536):
        raise ValueError("must look like host:port (for example 127.0.0.1:8080) or unix:/path")
    return value


def _setting(name: str, parse: Callable[[str], Any], default: str, doc: str) -> Any:
    """A dataclass field declared with its environment variable, parser, textual default and description."""
    metadata = {"env": PREFIX + name, "parse": parse, "raw_default": default, "doc": doc}
    return field(default_factory=lambda: parse(default), metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """Validated service settings. Build with ``Settings.from_env()``; tests pass keyword values."""

    env: str = _setting("ENV", _choice("production", "development"), "production",
                        "`production` or `development`; development-only relaxations have their own switches below.")
    payer_name: str = _setting("PAYER_NAME", _text, "Example Health Plan",
                               "Payer name shown as a card's `source.label` when the payer Organization of the "
                               "member's Coverage has no name in the record (CRD resp-4).")
    payer_identifiers: tuple[tuple[str, str], ...] = _setting(
        "PAYER_IDENTIFIERS", _payer_identifiers, "",
        "Comma-separated `system|value` identifiers of the payers this endpoint serves, matched against the "
        "primary Coverage's payer (CRD hook-13). Required in production; unset in development accepts any payer.")
    max_body_bytes: int = _setting("MAX_BODY_BYTES", _integer(1), "10485760",
                                   "Largest accepted request body in bytes; larger bodies get 413.")
    cors_origins: tuple[str, ...] = _setting("CORS_ORIGINS", _origins, "",
                                             "Comma-separated browser origins allowed by CORS (none by default).")
    hook_budget_seconds: float = _setting("HOOK_BUDGET_SECONDS", _seconds, "5.0",
                                          "Time budget for one order-sign call.")
    fhir_deadline_seconds: float = _setting("FHIR_DEADLINE_SECONDS", _seconds, "3.0",
                                            "Deadline for all FHIR queries of one call; must be below the hook budget.")
    fhir_max_pages: int = _setting("FHIR_MAX_PAGES", _integer(1), "20",
                                   "Most search-result pages followed per query.")
    fhir_max_response_bytes: int = _setting("FHIR_MAX_RESPONSE_BYTES", _integer(1), "20971520",
                                            "Largest FHIR response body read, in bytes.")
    fhir_max_workers: int = _setting("FHIR_MAX_WORKERS", _integer(1), "16",
                                     "Parallel FHIR queries per call.")
    fhir_allowed_hosts: tuple[str, ...] = _setting(
        "FHIR_ALLOWED_HOSTS", _hosts, "",
        "Comma-separated FHIR hosts allowed over plain http or on private/loopback addresses (none by default).")
    fhir_open_hosts: tuple[str, ...] = _setting(
        "FHIR_OPEN_HOSTS", _hosts, "",
        "Comma-separated open test FHIR servers (host or host:port) queried even when a call sends no "
        "`fhirAuthorization`; elsewhere, outside development, such a call is decided from its prefetch alone.")
    allow_loopback_fhir: bool = _setting("ALLOW_LOOPBACK_FHIR", _boolean, "false",
                                         "Development: allow a FHIR server on 127.0.0.1/localhost.")
    auth_disabled: bool = _setting("AUTH_DISABLED", _boolean, "false",
                                   "Development: accept calls without a client JWT.")
    trusted_clients_file: Path | None = _setting("TRUSTED_CLIENTS_FILE", _existing_file, "",
                                                 "YAML (or JSON) file of trusted CDS clients (iss, jku or JWKS) for JWT checks; see docs/security.md.")
    public_base_url: str | None = _setting("PUBLIC_BASE_URL", _url(("https", "http")), "",
                                           "Public base URL of the service (the JWT `aud` is built from it); required with authentication on.")
    jwt_leeway_seconds: int = _setting("JWT_LEEWAY_SECONDS", _integer(0), "60",
                                       "Clock leeway for JWT `exp`/`iat`, in seconds.")
    redis_url: str | None = _setting("REDIS_URL", _url(("redis", "rediss", "unix")), "",
                                     "Redis for the JWT replay (`jti`) store shared across workers and hosts; the audit database when unset.")
    jwt_max_lifetime_seconds: int = _setting("JWT_MAX_LIFETIME_SECONDS", _integer(1), "300",
                                             "Longest accepted client JWT lifetime (`exp - iat`, plus the leeway), in seconds.")
    database_url: str = _setting("DATABASE_URL", _text, "sqlite:///cart-cds-audit.db",
                                 "SQLAlchemy URL of the audit store.")
    audit_retention_days: int = _setting("AUDIT_RETENTION_DAYS", _integer(1), "2555",
                                         "Days audit records are kept.")
    audit_feedback_comments: bool = _setting(
        "AUDIT_FEEDBACK_COMMENTS", _boolean, "false",
        "Keep the free-text `userComment` of card feedback in the audit store (it may hold PHI; see docs/security.md).")
    audit_spool_dir: Path = _setting("AUDIT_SPOOL_DIR", lambda raw: Path(_text(raw)).expanduser(), "cart-cds-audit-spool",
                                     "Directory of the durable audit spool (a file per worker) used while the audit store is unreachable; holds PHI.")
    audit_spool_max_records: int = _setting("AUDIT_SPOOL_MAX_RECORDS", _integer(1), "10000",
                                            "Most records one worker spools; beyond it an answer that cannot be recorded is withheld (503).")
    log_level: str = _setting("LOG_LEVEL", lambda raw: _choice("debug", "info", "warning", "error", "critical")(raw).upper(),
                              "INFO", "Logging level.")
    bind: str = _setting("BIND", _bind, "127.0.0.1:8080", "Address `cart-cds serve` listens on.")
    tls_cert_file: Path | None = _setting(
        "TLS_CERT_FILE", _existing_file, "",
        "PEM certificate (chain) for `cart-cds serve` to terminate TLS itself (minimum TLS 1.2); unset: plain "
        "HTTP behind a TLS-terminating reverse proxy (docs/conformance.md, TLS).")
    tls_key_file: Path | None = _setting("TLS_KEY_FILE", _existing_file, "",
                                         "PEM private key of `CART_CDS_TLS_CERT_FILE`; both or neither.")
    workers: int = _setting("WORKERS", _integer(1), "4", "Gunicorn worker processes.")
    threads: int = _setting("THREADS", _integer(1), "2", "Threads per gunicorn worker.")
    policy_links: Mapping[str, str] = _setting(
        "POLICY_LINKS", _policy_links, "",
        "Policy documents linked from cards: `CP.PHAR.481=https://...,CP.PHAR.769=https://...`.")
    extra_product_codes: Mapping[str, tuple[tuple[str, str], ...]] = _setting(
        "EXTRA_PRODUCT_CODES", _product_codes, "",
        "Extra product codes per policy: `CP.PHAR.769=system|code;system|code`.")
    line_of_business_table: Path | None = _setting("LINE_OF_BUSINESS_TABLE", _json_table, "",
                                                   "JSON table mapping Coverage types to lines of business.")
    policy_dir: Path | None = _setting(
        "POLICY_DIR", _existing_directory, "",
        "Directory of the payer's policy files (`*.yaml`, several versions of a policy allowed); the shipped policies when unset. See docs/policies.md.")
    value_set_dir: Path | None = _setting(
        "VALUE_SET_DIR", _existing_directory, "",
        "Directory of extra value sets (`*.json`) the policies name; one with a shipped id replaces it.")

    def __post_init__(self) -> None:
        if self.fhir_deadline_seconds >= self.hook_budget_seconds:
            raise SettingsError(
                f"{PREFIX}FHIR_DEADLINE_SECONDS must be less than {PREFIX}HOOK_BUDGET_SECONDS")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise SettingsError(f"{PREFIX}TLS_CERT_FILE and {PREFIX}TLS_KEY_FILE must be set together")

    @property
    def development(self) -> bool:
        return self.env == "development"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``CART_CDS_*`` variable (unset or empty means the default); report all bad ones at once."""
        if environ is None:
            environ = os.environ
        values, problems = {}, []
        for spec in fields(cls):
            raw = environ.get(spec.metadata["env"], "")
            if not raw.strip():
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw)
            except ValueError as exc:
                problems.append(f"{spec.metadata['env']}: {exc}")
        if problems:
            raise SettingsError("invalid settings: " + "; ".join(problems))
        return cls(**values)


def start_check(settings: Settings) -> None:
    """What a real start (``cart-cds serve``, ``create_app()`` from the environment) requires beyond
    valid values: a production endpoint must know which payers it answers for (CRD hook-13), so an
    unset ``CART_CDS_PAYER_IDENTIFIERS`` refuses the start; development accepts any payer, with a warning."""
    if settings.payer_identifiers:
        return
    if not settings.development:
        raise SettingsError(
            f"{PREFIX}PAYER_IDENTIFIERS is required in production: name the payer identifiers this endpoint "
            "serves as system|value (comma-separated), or set CART_CDS_ENV=development to accept any payer")
    log.warning("%sPAYER_IDENTIFIERS is unset: development mode accepts a Coverage of any payer", PREFIX)


def current_settings() -> Settings:
    """The settings of the Flask app handling the current request."""
    return current_app.config[CONFIG_KEY]


def documented_settings() -> list[tuple[str, str, str]]:
    """(variable, default as written, description) for every setting, in declaration order (README table)."""
    return [(f.metadata["env"], f.metadata["raw_default"], f.metadata["doc"]) for f in fields(Settings)]
