"""Startup refuses malformed or unsafe configuration with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "k" * 64
GOOD_KEK = "A" * 43  # 32 bytes, base64url
SAFE_PRODUCTION = {
    "IDP_ENV": "production",
    "IDP_ISSUER": "https://idp.example.com",
    "IDP_SECRET_KEY": GOOD_KEY,
    "IDP_KEY_ENCRYPTION_KEY": GOOD_KEK,
    "IDP_SMTP_URL": "smtp://idp%40example.com:secret@mail.example.com:587",
}


def _check(tmp_path: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "PORT"))}
    env.update({"IDP_DATA_DIR": str(tmp_path), **environ})
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PORT", "eighty", "an integer from 1 to 65535"),
        ("PORT", "70000", "an integer from 1 to 65535"),
        ("IDP_DEBUG", "maybe", "one of true/false"),
        ("IDP_ENV", "staging", "one of development, production"),
        ("IDP_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local", "IP addresses or CIDR networks"),
        ("DATABASE_URL", "mysql://db/idp", "postgres:// or postgresql:// or sqlite://"),
        ("REDIS_URL", "localhost:6379", "redis://"),
        ("IDP_ISSUER", "idp.example.com", "http:// or https://"),
        ("IDP_ALLOWED_HOSTS", "a.example.com, http://b", "host names"),
        ("IDP_GEOIP_DATABASE", "/nonexistent/GeoLite2-City.mmdb", "an existing file"),
        ("IDP_SMTP_CA_FILE", "/nonexistent/ca.pem", "an existing file"),
        ("IDP_MAIL_RETRIES", "-1", "an integer from 0 to 30"),
        ("IDP_HSTS_SECONDS", "-1", "an integer from 0 to"),
        ("IDP_HSTS_PRELOAD", "sometimes", "one of true/false"),
        ("IDP_EXTRA_HEADERS", "X-Robots-Tag: noindex", "a JSON object of header names"),
        ("IDP_EXTRA_HEADERS", '["X-Robots-Tag"]', "a JSON object of header names"),
        ("IDP_EXTRA_HEADERS", '{"X Robots": "noindex"}', "is not a header name"),
        ("IDP_EXTRA_HEADERS", '{"X-Robots-Tag": 1}', "is not a header name with a string"),
        ("IDP_EXTRA_HEADERS", '{"X-A": "a\\r\\nSet-Cookie: x=1"}', "has a control character"),
        ("IDP_EXTRA_HEADERS", '{"content-security-policy": "x"}', "is set by Tessera itself"),
    ],
)
def test_malformed_value_stops_startup_naming_the_variable(
    tmp_path, variable, value, expected
) -> None:
    result = _check(tmp_path, **{variable: value})

    assert result.returncode != 0
    assert f"configuration error: {variable}={value!r} is not valid" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"IDP_SECRET_KEY": ""}, "IDP_SECRET_KEY is not set"),
        ({"IDP_SECRET_KEY": "short"}, "IDP_SECRET_KEY is too short"),
        ({"IDP_ISSUER": "http://idp.example.com"}, "IDP_ISSUER"),
        ({"IDP_DEBUG": "1"}, "IDP_DEBUG must be off"),
        ({"IDP_KEY_ENCRYPTION_KEY": ""}, "IDP_KEY_ENCRYPTION_KEY is not set"),
        ({"IDP_KEY_ENCRYPTION_KEY": "c2hvcnQ"}, "expected 32 bytes, base64url-encoded"),
        ({"IDP_SMTP_URL": ""}, "IDP_SMTP_URL is not set"),
    ],
)
def test_production_refuses_unsafe_settings(tmp_path, change, named) -> None:
    result = _check(tmp_path, **{**SAFE_PRODUCTION, **change})

    assert result.returncode != 0
    assert named in result.stderr


@pytest.mark.parametrize("value", ["ES256", "rs256", "EdDSA"])
def test_choice_settings_accept_any_case(tmp_path, value) -> None:
    result = _check(tmp_path, IDP_ACCESS_TOKEN_ALG=value, IDP_LOG_LEVEL="WARNING")

    assert result.returncode == 0, result.stderr


def test_issuer_with_a_query_is_refused(tmp_path) -> None:
    # OIDC Discovery 1.0 §3: the issuer has no query or fragment.
    result = _check(tmp_path, IDP_ISSUER="https://idp.example.com/?tenant=1")

    assert result.returncode != 0
    assert "must not have a query or fragment" in result.stderr


def test_production_with_safe_settings_starts(tmp_path) -> None:
    result = _check(tmp_path, **SAFE_PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []  # production never invents a key


@pytest.mark.parametrize("name", ["secret_key", "key_encryption_key"])
def test_development_generates_its_private_keys_once(tmp_path, name) -> None:
    assert _check(tmp_path).returncode == 0
    key_file = tmp_path / name
    first = key_file.read_text()

    assert _check(tmp_path).returncode == 0
    assert key_file.read_text() == first
    assert len(first) >= 43
    assert key_file.stat().st_mode & 0o077 == 0


def _beat_schedule(tmp_path: Path, **environ: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "PORT", "CLICKHOUSE"))}
    env.update({"IDP_DATA_DIR": str(tmp_path), **environ})
    code = "from django.conf import settings; print(sorted(settings.CELERY_BEAT_SCHEDULE))"
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip


def test_the_audit_shipper_is_scheduled_only_when_there_is_clickhouse(tmp_path) -> None:
    assert "ship-audit-events" not in _beat_schedule(tmp_path)
    assert "apply-audit-retention" in _beat_schedule(tmp_path)  # the outbox's retention
    with_clickhouse = _beat_schedule(
        tmp_path,
        DATABASE_URL="postgres://tessera@127.0.0.1:9/tessera",
        CLICKHOUSE_URL="clickhouse://127.0.0.1:9/default",
    )
    assert "ship-audit-events" in with_clickhouse


@pytest.mark.parametrize(
    "value",
    [
        "smtp+tls://mailer:s3cret-pw@mail.example.com",  # no such scheme
        "smtp://mailer:s3cret-pw@mail.example.com:port",
        "smtp://mailer:s3cret-pw@mail.example.com?tls=none",  # no unencrypted SMTP
    ],
)
def test_malformed_smtp_url_stops_startup_without_echoing_the_password(tmp_path, value) -> None:
    result = _check(tmp_path, IDP_SMTP_URL=value)

    assert result.returncode != 0
    assert "IDP_SMTP_URL is not valid: expected smtp://" in result.stderr
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr
