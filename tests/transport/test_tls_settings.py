"""The TLS settings (idp/settings.py, TLS block): malformed values stop startup naming the
variable; the mutual-TLS listener needs the TLS pair; its base URL is derived."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.transport.certs import issue

ROOT = Path(__file__).resolve().parents[2]
PRINT = "from django.conf import settings; print(settings.MTLS_BASE_URL, settings.TLS_CURVES)"


def _settings(tmp_path: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "PORT"))}
    env |= {"DJANGO_SETTINGS_MODULE": "idp.settings", "IDP_DATA_DIR": str(tmp_path), **environ}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {PRINT}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _pair(tmp_path: Path) -> dict[str, str]:
    cert, key = issue("idp.example").write(tmp_path / "c.pem", tmp_path / "k.pem")
    return {"IDP_TLS_CERT_FILE": str(cert), "IDP_TLS_KEY_FILE": str(key)}


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("IDP_TLS_MIN_VERSION", "1.1", "one of 1.2, 1.3"),
        ("IDP_TLS_CURVES", "X25519,P-521", "a comma-separated list of X25519, P-256, P-384"),
        ("IDP_TLS_CURVES", ",", "a comma-separated list of X25519, P-256, P-384"),
        ("IDP_MTLS_PORT", "https", "an integer from 0 to 65535"),
        ("IDP_TLS_DEV_CERT", "perhaps", "one of true/false"),
    ],
)
def test_malformed_tls_settings_stop_startup(tmp_path, variable, value, expected) -> None:
    result = _settings(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert f"{variable}={value!r} is not valid" in result.stderr
    assert expected in result.stderr


def test_the_mtls_listener_needs_the_tls_pair(tmp_path) -> None:
    result = _settings(tmp_path, IDP_MTLS_PORT="8443")
    assert result.returncode != 0
    assert "IDP_MTLS_PORT needs IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE" in result.stderr


def test_the_mtls_base_url_defaults_to_the_issuer_host_on_the_mtls_port(tmp_path) -> None:
    # RFC 8705 §5: the aliases live on another origin; here the issuer's host, another port.
    env = {"IDP_ISSUER": "https://idp.example", "IDP_MTLS_PORT": "8443", **_pair(tmp_path)}
    result = _settings(tmp_path, **env, IDP_TLS_CURVES="P-384, X25519")
    assert result.stdout.split() == ["https://idp.example:8443", "P-384:X25519"], result.stderr
    named = _settings(tmp_path, **env, IDP_MTLS_BASE_URL="https://mtls.idp.example/")
    assert named.stdout.split()[0] == "https://mtls.idp.example", named.stderr


def test_the_development_certificate_is_refused_in_production(tmp_path) -> None:
    result = _settings(tmp_path, IDP_ENV="production", IDP_TLS_DEV_CERT="1")
    assert result.returncode != 0
    assert "IDP_TLS_DEV_CERT is for development" in result.stderr
