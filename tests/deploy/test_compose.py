"""deploy/compose.yaml, its nginx config and deploy/compose/make_secrets.py.

The Compose file is validated against the Compose Specification's JSON schema, vendored as
tests/deploy/compose-spec.json: schema/compose-spec.json of github.com/compose-spec/compose-spec
(Apache License 2.0) at commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6 (June 2026; the file
last changed in a08f8d51, October 2025). No container runs here (deploy/README.md says why);
nginx checks its config with `nginx -t`.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
NGINX_CONF = ROOT / "deploy" / "compose" / "nginx.conf"
MAKE_SECRETS = ROOT / "deploy" / "compose" / "make_secrets.py"
SCHEMA = Path(__file__).with_name("compose-spec.json")
TESSERA = ("migrate", "web", "worker", "beat", "mtls")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


def test_the_schema_refuses_what_compose_would_refuse(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["web"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["web"]["cap_drop"] = "ALL"
    broken["services"]["worker"]["restart_policy"] = "always"
    errors = schema_errors(broken)
    assert any(error.startswith("services/web/depends_on") for error in errors), errors
    assert any(error.startswith("services/web/cap_drop") for error in errors), errors
    assert any("restart_policy" in error for error in errors), errors


def test_the_stack_has_every_part_once_and_two_web_servers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "clickhouse", "proxy", *TESSERA}
    # The default stack is unchanged by the optional mutual-TLS listener: only it has a profile.
    assert {name for name, service in services.items() if "profiles" in service} == {"mtls"}
    assert services["mtls"]["profiles"] == ["mtls"]
    assert services["web"]["deploy"]["replicas"] == 2
    for single in ("worker", "beat", "migrate"):  # beat: exactly one, or tasks run twice
        assert services[single].get("deploy", {}).get("replicas", 1) == 1
    assert services["web"]["command"] == ["python", "-m", "idp.web"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "idp", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "idp", "beat"]
    schedule = services["beat"]["command"][services["beat"]["command"].index("--schedule") + 1]
    assert any(
        volume.endswith(":" + str(Path(schedule).parent)) for volume in services["beat"]["volumes"]
    )


def test_tessera_starts_after_a_successful_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert "manage.py migrate --noinput" in " ".join(migrate["command"])
    assert "manage.py audit_migrate" in " ".join(migrate["command"])
    assert "manage.py rotate_keys --scheduled" in " ".join(migrate["command"])
    for name in ("web", "worker", "beat", "mtls"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    for store in ("postgres", "clickhouse"):
        assert migrate["depends_on"][store] == {"condition": "service_healthy"}
        assert "healthcheck" in services[store]
    assert services["proxy"]["depends_on"]["web"] == {"condition": "service_healthy"}


def test_tessera_containers_are_locked_down(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {services[name]["image"] for name in TESSERA}
    assert len(images) == 1  # one image, the command chooses the part
    for name in (*TESSERA, "proxy"):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert "/tmp" in service["tmpfs"], name
    assert services["proxy"]["user"] != "0"
    for name in TESSERA:
        mounts = [volume.split(":")[1] for volume in services[name]["volumes"]]
        assert "/var/lib/tessera/journal" in mounts, name
        # The data dir (IDP_DATA_DIR, the image's): per container, remade at each start.
        assert "/opt/tessera/var" in services[name]["tmpfs"], name


def test_secrets_come_from_files_and_never_from_the_environment(compose: dict[str, Any]) -> None:
    assert all(set(secret) == {"file"} for secret in compose["secrets"].values())
    assert all(secret["file"].startswith("./secrets/") for secret in compose["secrets"].values())
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    secretive = re.compile(r"SECRET|PASSWORD$|_KEY$|DATABASE_URL|CLICKHOUSE_URL|SMTP_URL")
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        # NAME_FILE holds a path, never the secret itself.
        leaked = [
            key
            for key, value in environment.items()
            if secretive.search(key)
            and not (key.endswith("_FILE") and str(value).startswith("/run/secrets/"))
        ]
        assert leaked == [], f"{name} sets {leaked} in its environment"
        for value in map(str, environment.values()):
            assert not re.search(r"://[^/@]+:[^/@]+@", value), f"{name}: a password in a URL"
    # Tessera's secrets: files Compose mounts at /run/secrets/<name>, each named by a
    # NAME_FILE variable settings read (idp/env.py); every Tessera service has them all.
    wanted = {
        "IDP_SECRET_KEY_FILE", "IDP_KEY_ENCRYPTION_KEY_FILE", "DATABASE_URL_FILE",
        "CLICKHOUSE_URL_FILE", "IDP_SMTP_URL_FILE",
    }  # fmt: skip
    for name in TESSERA:
        service = compose["services"][name]
        mounted = {secret for secret in service["secrets"] if isinstance(secret, str)}
        files = {
            key: value for key, value in service["environment"].items() if key.endswith("_FILE")
        }
        assert wanted <= set(files), name
        for key, value in files.items():
            directory, _, secret = value.rpartition("/")
            assert directory == "/run/secrets", f"{name} {key}"
            assert secret in mounted, f"{name} {key}: {secret} is not mounted"
            assert secret in compose["secrets"], f"{name} {key}: {secret} is not a secret"
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == (
        "/run/secrets/postgres_password"
    )


def test_only_the_proxy_is_a_trusted_proxy_and_the_data_stores_are_internal(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    proxy_address = ipaddress.ip_address(services["proxy"]["networks"]["edge"]["ipv4_address"])
    subnet = ipaddress.ip_network(compose["networks"]["edge"]["ipam"]["config"][0]["subnet"])
    assert proxy_address in subnet
    for name in TESSERA:
        trusted = ipaddress.ip_network(services[name]["environment"]["IDP_TRUSTED_PROXIES"])
        assert trusted == ipaddress.ip_network(f"{proxy_address}/32"), name
    assert compose["networks"]["data"]["internal"] is True
    for store in ("postgres", "redis", "clickhouse"):
        assert services[store]["networks"] == ["data"]
        assert "ports" not in services[store]
    assert "edge" in services["web"]["networks"]
    assert {port.split(":")[-1] for port in services["proxy"]["ports"]} == {"8443", "8080"}


def test_nginx_forwards_the_client_address_and_scheme() -> None:
    config = NGINX_CONF.read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in config
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in config
    assert "ssl_protocols TLSv1.3;" in config
    assert "server web:8000;" in config


def make_secrets(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MAKE_SECRETS), "--dir", str(directory), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("compose") / "secrets"
    smtp_url = "smtp://tessera:p%40ss@mail.example.com"
    result = make_secrets(directory, "--smtp-url", smtp_url, "--self-signed", "localhost")
    assert result.returncode == 0, result.stderr
    return directory


def test_make_secrets_writes_every_file_compose_mounts(
    compose: dict[str, Any], secrets_dir: Path
) -> None:
    wanted = {Path(secret["file"]).name for secret in compose["secrets"].values()}
    assert {path.name for path in secrets_dir.iterdir()} == wanted
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    # Passwords agree between the services and the URLs Tessera connects with.
    database = urlsplit((secrets_dir / "DATABASE_URL").read_text().strip())
    assert (
        unquote(database.password or "") == (secrets_dir / "postgres_password").read_text().strip()
    )
    assert (database.hostname, database.port, database.path) == ("postgres", 5432, "/tessera")
    clickhouse = urlsplit((secrets_dir / "CLICKHOUSE_URL").read_text().strip())
    users = ET.fromstring((secrets_dir / "clickhouse_users.xml").read_text())  # noqa: S314 - ours
    digest = users.findtext("users/tessera/password_sha256_hex")
    assert digest == hashlib.sha256(unquote(clickhouse.password or "").encode()).hexdigest()
    assert clickhouse.hostname == "clickhouse"


INTERPOLATION = re.compile(r"\$\{(\w+):-([^}]*)\}")


def container_environment(
    compose: dict[str, Any], service: str, secrets_dir: Path, data_dir: Path
) -> dict[str, str]:
    """The environment Compose gives `service` (defaults interpolated), with /run/secrets/NAME
    turned into the file make_secrets.py wrote for that secret, and the image's ENV that
    settings need (its data dir here)."""
    environment: dict[str, str] = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "idp.settings",
        "IDP_DATA_DIR": str(data_dir),
    }
    for key, value in compose["services"][service]["environment"].items():
        text = INTERPOLATION.sub(lambda match: match[2], str(value))
        if text.startswith("/run/secrets/"):
            secret = compose["secrets"][text.removeprefix("/run/secrets/")]
            text = str(secrets_dir / Path(secret["file"]).name)
        environment[key] = text
    return environment


def run_settings(environment: dict[str, str], check: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {check}"],
        cwd=ROOT, env=environment, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_tessera_starts_in_production_with_the_secrets_make_secrets_wrote(
    compose: dict[str, Any], secrets_dir: Path, tmp_path: Path
) -> None:
    """Settings load from exactly the files and NAME_FILE variables of the web service."""
    check = (
        "from django.conf import settings; "
        "print(settings.PRODUCTION, len(settings.SECRET_KEY), len(settings.KEY_ENCRYPTION_KEY), "
        "settings.DATABASES['default']['HOST'], settings.CLICKHOUSE_URL.split('@')[1], "
        "settings.EMAIL_HOST, settings.MTLS_BASE_URL or '-')"
    )
    result = run_settings(container_environment(compose, "web", secrets_dir, tmp_path), check)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True", "86", "32", "postgres", "clickhouse:9000/tessera", "mail.example.com", "-"
    ]  # fmt: skip


def test_the_mtls_listener_serves_the_proxys_certificate_on_its_published_port(
    compose: dict[str, Any], secrets_dir: Path, tmp_path: Path
) -> None:
    mtls = compose["services"]["mtls"]
    assert mtls["command"] == ["python", "-m", "idp.mtls"]
    port = mtls["environment"]["IDP_MTLS_PORT"]
    assert [published.split(":")[-1] for published in mtls["ports"]] == [port]
    assert f"https://127.0.0.1:{port}/healthz" in " ".join(mtls["healthcheck"]["test"])
    assert "edge" in mtls["networks"]  # a published port needs a network with a way out
    environment = container_environment(compose, "mtls", secrets_dir, tmp_path)
    check = (
        "from django.conf import settings; from idp import tls; "
        "pair = tls.load_pair(settings.TLS_CERT_FILE, settings.TLS_KEY_FILE); "
        "print(settings.MTLS_PORT, settings.MTLS_BASE_URL, pair.subject)"
    )
    result = run_settings(environment, check)
    assert result.returncode == 0, result.stderr
    # Without TESSERA_MTLS_BASE_URL: the issuer's host on the listener's port.
    assert result.stdout.split()[:2] == [port, f"https://localhost:{port}"]
    assert "localhost" in result.stdout.split()[2]
    # With it, the web servers publish the same origin as mtls_endpoint_aliases.
    base_url = mtls["environment"]["IDP_MTLS_BASE_URL"]
    assert base_url == compose["services"]["web"]["environment"]["IDP_MTLS_BASE_URL"]
    assert base_url == "${TESSERA_MTLS_BASE_URL:-}"


def test_make_secrets_never_overwrites_a_key(secrets_dir: Path) -> None:
    before = (secrets_dir / "IDP_KEY_ENCRYPTION_KEY").read_text()
    result = make_secrets(
        secrets_dir, "--smtp-url", "smtp://mail.example.com", "--self-signed", "x"
    )
    assert result.returncode == 1
    assert "already exist; nothing written" in result.stderr
    assert (secrets_dir / "IDP_KEY_ENCRYPTION_KEY").read_text() == before


def test_make_secrets_refuses_an_smtp_url_without_tls(tmp_path: Path) -> None:
    result = make_secrets(tmp_path, "--smtp-url", "http://mail.example.com", "--self-signed", "x")
    assert result.returncode == 2
    assert "--smtp-url must be smtp://" in result.stderr
    assert not tmp_path.joinpath("IDP_SECRET_KEY").exists()


def test_nginx_accepts_the_proxy_config(secrets_dir: Path, tmp_path: Path) -> None:
    """`nginx -t` on the config as compose mounts it: the upstream's name and the secrets'
    paths point at this machine instead, since `web` and /run/secrets exist in the stack only."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    config = NGINX_CONF.read_text()
    config = config.replace("server web:8000;", "server 127.0.0.1:8000;")
    config = config.replace("/run/secrets/", f"{secrets_dir}/")
    config = config.replace("tls_certificate;", "tls_certificate.pem;")
    config = config.replace("tls_private_key;", "tls_private_key.pem;")
    config = config.replace(" /tmp/nginx", f" {tmp_path}/nginx")
    path = tmp_path / "nginx.conf"
    path.write_text(config)
    result = subprocess.run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
