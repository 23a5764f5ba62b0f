"""Mutual TLS (RFC 8705) end to end with Tessera terminating it: `python -m idp.mtls` (the tls
part's listener, cheroot + pyOpenSSL) asks for a client certificate, lets any through the
handshake and hands it to Django as SSL_CLIENT_CERT; the application judges it. No proxy is
trusted here, so a certificate header from the client is only a header."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest
import requests

from apps.tokens.services import client_create
from tests.mtls import pki
from tests.mtls.conftest import Pki
from tests.transport.servers import mtls

pytestmark = pytest.mark.usefixtures("servers", "django_db_setup", "transactional_db")


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_tessera_s_own_listener_authenticates_and_binds_to_the_client_certificate(
    certificates: Pki, tmp_path
) -> None:
    server = pki.server_certificate(certificates.server_ca)
    cert_file, key_file = server.write(tmp_path, "listener")
    tls_client, _ = client_create(
        name="billing", redirect_uris=[], grant_types=["client_credentials"],
        token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_subject_dn="CN=billing,O=Tessera Tests,C=DE",
    )  # fmt: skip
    self_signed = pki.leaf(None, pki.name("reporting"))
    ss_client, _ = client_create(
        name="reporting", redirect_uris=[], grant_types=["client_credentials"],
        token_endpoint_auth_method="self_signed_tls_client_auth", jwks=self_signed.jwks(),
    )  # fmt: skip
    ca_issued = pki.leaf(certificates.ca, pki.name("billing"))
    env = {
        "IDP_TLS_CERT_FILE": str(cert_file),
        "IDP_TLS_KEY_FILE": str(key_file),
        "IDP_MTLS_CLIENT_CA_FILE": str(certificates.ca_file),
    }
    with mtls(tmp_path, certificates.server_ca_file, **env) as listener:
        url = f"https://127.0.0.1:{listener.port}"

        def token(client_id: str, cert: tuple[str, str] | None, **headers: str) -> Any:
            return requests.post(
                f"{url}/oauth/token",
                data={"grant_type": "client_credentials", "client_id": client_id},
                cert=cert, headers=headers, verify=str(certificates.server_ca_file), timeout=30,
            )  # fmt: skip

        by_ca = token(tls_client.client_id, certificates.client_files(ca_issued, "billing"))
        by_self = token(ss_client.client_id, certificates.client_files(self_signed, "reporting"))
        none = token(tls_client.client_id, None)
        forged = token(tls_client.client_id, None, **{"X-Client-Cert": quote(ca_issued.pem)})

        assert by_ca.status_code == 200, listener.log_text()[-3000:]
        assert _claims(by_ca.json()["access_token"])["cnf"] == {"x5t#S256": ca_issued.thumbprint}
        assert by_self.status_code == 200, by_self.text
        assert _claims(by_self.json()["access_token"])["cnf"] == {
            "x5t#S256": self_signed.thumbprint
        }
        assert (none.status_code, forged.status_code) == (401, 401)
        assert forged.json()["error"] == "invalid_client"
