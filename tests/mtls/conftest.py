"""Mutual TLS over real handshakes: a client CA and certificates made here, a Tessera web server
(`python -m idp.web`) on the suite's database, and a real nginx in front of it forwarding the
client certificate (tests/mtls/nginx.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.mtls import pki
from tests.mtls.nginx import PROXY_ADDRESS, nginx
from tests.servers import production_web_server


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: pki.Issued  # the client CA (IDP_MTLS_CLIENT_CA_FILE)
    ca_file: Path
    server_ca: pki.Issued  # what the test clients verify nginx's certificate with
    server_ca_file: Path

    def client_files(self, issued: pki.Issued, name: str) -> tuple[str, str]:
        """(cert, key) paths, as requests' and httpx's `cert=` take them."""
        cert, key = issued.write(self.directory, name)
        return str(cert), str(key)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.certificate_authority()
    ca_file = directory / "client-ca.pem"
    ca_file.write_bytes(ca.pem)
    server_ca = pki.certificate_authority("Tessera Test Server CA")
    server_ca_file = directory / "server-ca.pem"
    server_ca_file.write_bytes(server_ca.pem)
    return Pki(directory, ca, ca_file, server_ca, server_ca_file)


@dataclass(frozen=True)
class Deployment:
    proxy: str  # nginx's https URL: the way clients come
    direct: str  # Tessera's own http URL, reached without the proxy


@pytest.fixture(scope="module")
def behind_nginx(
    servers, django_db_setup, certificates: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Tessera trusting nginx's address (only) as a proxy, and nginx in front of it."""
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
        "IDP_WEB_WORKERS": "1",
        "IDP_LOG_LEVEL": "warning",
        "IDP_TRUSTED_PROXIES": f"{PROXY_ADDRESS}/32",
        "IDP_MTLS_CLIENT_CA_FILE": str(certificates.ca_file),
    }
    server = pki.server_certificate(certificates.server_ca)
    cert, key = server.write(certificates.directory, "nginx-server")
    with production_web_server(env) as (_, direct):
        upstream = int(direct.rsplit(":", 1)[1])
        prefix = tmp_path_factory.mktemp("nginx")
        with nginx(prefix, upstream=upstream, cert=cert, key=key) as proxy:
            yield Deployment(proxy=proxy, direct=direct)
