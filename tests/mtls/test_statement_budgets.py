"""Certificate authentication and binding cost the token endpoint no SQL statement: tests/tokens'
budget for client_credentials (issue 11) holds for tls_client_auth and
self_signed_tls_client_auth clients, the certificate checked in memory (the client CA bundle
read once per process, the client from the clients cache)."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from apps.tokens.services import client_create
from tests.mtls import pki
from tests.tokens.test_statement_budgets import _show, caches_caught_up, statements

pytestmark = pytest.mark.django_db(transaction=True)

CA = pki.certificate_authority()


@pytest.mark.parametrize("method", ["tls_client_auth", "self_signed_tls_client_auth"])
def test_a_certificate_client_credentials_token_runs_no_statement(
    settings, tmp_path, method: str
) -> None:
    ca_file = tmp_path / "client-ca.pem"
    ca_file.write_bytes(CA.pem)
    settings.MTLS_CLIENT_CA_FILE = ca_file
    issued = pki.leaf(CA if method == "tls_client_auth" else None, pki.name("svc"))
    registration = (
        {"tls_client_auth_subject_dn": "CN=svc,O=Tessera Tests,C=DE"}
        if method == "tls_client_auth"
        else {"jwks": issued.jwks()}
    )
    client, _ = client_create(
        name="svc", redirect_uris=[], grant_types=["client_credentials"],
        token_endpoint_auth_method=method, **registration,
    )  # fmt: skip
    http = HttpClient(SSL_CLIENT_CERT=issued.pem.decode())
    data = {"grant_type": "client_credentials", "client_id": client.client_id}
    for _ in range(2):  # the signing keys made, then every cache warm
        http.post("/oauth/token", data)
        caches_caught_up()

    with statements() as sql:
        response = http.post("/oauth/token", data)

    assert response.status_code == 200, response.content
    assert sql == [], _show(sql)
