"""Settings: typed from CART_CDS_* variables, every bad value reported by variable name."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.settings import Settings, SettingsError, documented_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults():
    settings = Settings.from_env({})

    assert settings == Settings()
    assert settings.env == "production" and not settings.development
    assert settings.payer_name == "Example Health Plan"
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.cors_origins == () and settings.fhir_allowed_hosts == ()
    assert (settings.hook_budget_seconds, settings.fhir_deadline_seconds) == (5.0, 3.0)
    assert (settings.fhir_max_pages, settings.fhir_max_response_bytes, settings.fhir_max_workers) == (20, 20971520, 16)
    assert settings.allow_loopback_fhir is False and settings.auth_disabled is False
    assert settings.trusted_clients_file is None and settings.public_base_url is None and settings.redis_url is None
    assert settings.jwt_leeway_seconds == 60 and settings.audit_retention_days == 2555
    assert settings.database_url == "sqlite:///cart-cds-audit.db"
    assert (settings.log_level, settings.bind, settings.workers, settings.threads) == ("INFO", "127.0.0.1:8080", 4, 2)
    assert dict(settings.policy_links) == {} and dict(settings.extra_product_codes) == {}
    assert settings.line_of_business_table is None


def test_values_are_parsed_and_typed(tmp_path):
    clients = tmp_path / "clients.json"
    clients.write_text("{}")
    table = tmp_path / "lob.json"
    table.write_text('{"rows": []}')
    settings = Settings.from_env({
        "CART_CDS_ENV": "Development",
        "CART_CDS_CORS_ORIGINS": "https://EHR.example.org, http://localhost:3000",
        "CART_CDS_FHIR_ALLOWED_HOSTS": "fhir.local,10.0.0.5:8080",
        "CART_CDS_ALLOW_LOOPBACK_FHIR": "yes",
        "CART_CDS_AUTH_DISABLED": "1",
        "CART_CDS_TRUSTED_CLIENTS_FILE": str(clients),
        "CART_CDS_PUBLIC_BASE_URL": "https://cds.payer.example/",
        "CART_CDS_REDIS_URL": "redis://localhost:6379/0",
        "CART_CDS_LOG_LEVEL": "debug",
        "CART_CDS_HOOK_BUDGET_SECONDS": "8",
        "CART_CDS_FHIR_DEADLINE_SECONDS": "6.5",
        "CART_CDS_POLICY_LINKS": "CP.PHAR.481=https://payer.example/481.pdf,CP.PHAR.769=https://payer.example/769",
        "CART_CDS_EXTRA_PRODUCT_CODES": "CP.PHAR.769=http://www.nlm.nih.gov/research/umls/rxnorm|999;urn:x|A1",
        "CART_CDS_LINE_OF_BUSINESS_TABLE": str(table),
        "CART_CDS_WORKERS": " 4 ",
    })

    assert settings.development
    assert settings.cors_origins == ("https://ehr.example.org", "http://localhost:3000")
    assert settings.fhir_allowed_hosts == ("fhir.local", "10.0.0.5:8080")
    assert settings.allow_loopback_fhir and settings.auth_disabled
    assert settings.trusted_clients_file == clients and settings.line_of_business_table == table
    assert settings.public_base_url == "https://cds.payer.example"
    assert settings.log_level == "DEBUG" and settings.workers == 4
    assert settings.fhir_deadline_seconds == 6.5
    assert settings.policy_links["CP.PHAR.769"] == "https://payer.example/769"
    assert settings.extra_product_codes["CP.PHAR.769"] == (
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "999"), ("urn:x", "A1"))


@pytest.mark.parametrize("name, value", [
    ("ENV", "staging"),
    ("MAX_BODY_BYTES", "ten"),
    ("MAX_BODY_BYTES", "0"),
    ("CORS_ORIGINS", "*"),
    ("CORS_ORIGINS", "https://ehr.example.org/app"),
    ("HOOK_BUDGET_SECONDS", "nan"),
    ("HOOK_BUDGET_SECONDS", "-1"),
    ("FHIR_MAX_PAGES", "1.5"),
    ("FHIR_ALLOWED_HOSTS", "http://fhir.local"),
    ("ALLOW_LOOPBACK_FHIR", "maybe"),
    ("AUTH_DISABLED", "2"),
    ("TRUSTED_CLIENTS_FILE", "/nonexistent/clients.json"),
    ("PUBLIC_BASE_URL", "cds.example.org"),
    ("JWT_LEEWAY_SECONDS", "-5"),
    ("REDIS_URL", "http://localhost:6379"),
    ("LOG_LEVEL", "verbose"),
    ("BIND", "8080"),
    ("BIND", "0.0.0.0:99999"),
    ("WORKERS", "0"),
    ("THREADS", "many"),
    ("POLICY_LINKS", "CP.PHAR.481=http://insecure.example/481"),
    ("POLICY_LINKS", "https://payer.example/481"),
    ("EXTRA_PRODUCT_CODES", "CP.PHAR.769=999"),
    ("LINE_OF_BUSINESS_TABLE", "/nonexistent/lob.json"),
])
def test_bad_value_names_the_variable(name, value):
    with pytest.raises(SettingsError, match=f"CART_CDS_{name}: "):
        Settings.from_env({f"CART_CDS_{name}": value})


def test_all_bad_values_are_reported_together_without_echoing_them():
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"CART_CDS_WORKERS": "x", "CART_CDS_REDIS_URL": "http://user:hunter2@host"})

    assert "CART_CDS_WORKERS" in str(error.value) and "CART_CDS_REDIS_URL" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_line_of_business_table_must_be_json(tmp_path):
    table = tmp_path / "lob.json"
    table.write_text("not json")
    with pytest.raises(SettingsError, match="CART_CDS_LINE_OF_BUSINESS_TABLE"):
        Settings.from_env({"CART_CDS_LINE_OF_BUSINESS_TABLE": str(table)})


@pytest.mark.parametrize("deadline", ["5", "7"])
def test_fhir_deadline_must_be_below_the_hook_budget(deadline):
    with pytest.raises(SettingsError, match="CART_CDS_FHIR_DEADLINE_SECONDS must be less than"):
        Settings.from_env({"CART_CDS_FHIR_DEADLINE_SECONDS": deadline})


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().workers = 3


def test_readme_documents_every_setting():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [name for name, _, _ in documented_settings() if f"`{name}`" not in readme]
    assert missing == []
