"""RFC 8705 rules checked in this process, the certificate arriving as Tessera's own mutual-TLS
listener hands it over (the WSGI environ's SSL_CLIENT_CERT) or in a trusted proxy's header:
what nginx never lets through (an expired certificate), every subjectAltName kind, how subject
DNs compare, malformed certificates and headers (no 500), the admin API's bound tokens and
discovery's aliases. The handshakes themselves are test_behind_nginx.py's."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from django.test import Client as HttpClient

from apps.accounts.services import user_create
from apps.core import client_cert
from apps.tokens import views
from apps.tokens.services import client_create, consent_grant
from tests.mtls import pki
from tests.rp import PASSWORD, REDIRECT_URI, RegisteredClient
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import Flow, new_pkce

pytestmark = pytest.mark.django_db

TOKEN = "/oauth/token"
CA = pki.certificate_authority()
PAST = {
    "not_before": pki.NOW - datetime.timedelta(days=3),
    "not_after": pki.NOW - datetime.timedelta(days=1),
}


@pytest.fixture(autouse=True)
def _client_ca(settings, tmp_path) -> None:
    ca_file = tmp_path / "client-ca.pem"
    ca_file.write_bytes(CA.pem)
    settings.MTLS_CLIENT_CA_FILE = ca_file
    settings.TRUSTED_PROXIES = (ipaddress.ip_network("10.9.0.1/32"),)


def _token(client_id: str, **environ: str) -> Any:
    return HttpClient().post(
        TOKEN, {"grant_type": "client_credentials", "client_id": client_id}, **environ
    )


def _tls_client(**identifier: str) -> str:
    client, _ = client_create(
        name="svc", redirect_uris=[], grant_types=["client_credentials"],
        token_endpoint_auth_method="tls_client_auth", **identifier,
    )  # fmt: skip
    return client.client_id


def _pem(issued: pki.Issued) -> str:
    return issued.pem.decode()


def test_an_expired_certificate_is_refused_for_either_method() -> None:
    tls_id = _tls_client(tls_client_auth_subject_dn="CN=svc,O=Tessera Tests,C=DE")
    old_ca_issued = pki.leaf(CA, pki.name("svc"), **PAST)
    old_self_signed = pki.leaf(None, pki.name("svc"), **PAST)
    self_signed, _ = client_create(
        name="old", redirect_uris=[], grant_types=["client_credentials"],
        token_endpoint_auth_method="self_signed_tls_client_auth", jwks=old_self_signed.jwks(),
    )  # fmt: skip

    assert _token(tls_id, SSL_CLIENT_CERT=_pem(old_ca_issued)).status_code == 401
    assert _token(self_signed.client_id, SSL_CLIENT_CERT=_pem(old_self_signed)).status_code == 401
    # the same, in date, authenticate
    fresh = pki.leaf(CA, pki.name("svc"))
    assert _token(tls_id, SSL_CLIENT_CERT=_pem(fresh)).status_code == 200


@pytest.mark.parametrize(
    ("registered", "san", "other"),
    [
        ({"tls_client_auth_san_uri": "spiffe://example.com/billing"},
         x509.UniformResourceIdentifier("spiffe://example.com/billing"),
         x509.UniformResourceIdentifier("spiffe://example.com/billing/")),
        ({"tls_client_auth_san_ip": "2001:db8::7"},
         x509.IPAddress(ipaddress.ip_address("2001:0db8:0:0::7")),
         x509.IPAddress(ipaddress.ip_address("2001:db8::8"))),
        ({"tls_client_auth_san_email": "billing@Example.COM"},
         x509.RFC822Name("billing@example.com"),
         x509.RFC822Name("Billing@example.com")),  # the local part is case-sensitive
        ({"tls_client_auth_san_dns": "billing.example.com"},
         x509.DNSName("BILLING.example.com"),
         x509.DNSName("billing.example.com.evil.test")),
    ],
)  # fmt: skip
def test_each_subject_alternative_name_kind_matches_only_its_value(
    registered: dict[str, str], san: x509.GeneralName, other: x509.GeneralName
) -> None:
    client_id = _tls_client(**registered)
    right = pki.leaf(CA, pki.name("x"), sans=[san])
    wrong = pki.leaf(CA, pki.name("x"), sans=[other])

    assert _token(client_id, SSL_CLIENT_CERT=_pem(right)).status_code == 200
    assert _token(client_id, SSL_CLIENT_CERT=_pem(wrong)).status_code == 401


def test_subject_dns_compare_attribute_by_attribute_ignoring_case_and_spaces() -> None:
    # RFC 4517 distinguishedNameMatch: the registered string need not be byte-identical
    client_id = _tls_client(
        tls_client_auth_subject_dn="cn=Billing  Service, o=example payments,c=de"
    )
    same = pki.leaf(CA, pki.name("billing service", "Example Payments"))
    reordered = pki.leaf(
        CA,
        x509.Name([
            x509.NameAttribute(x509.NameOID.COMMON_NAME, "Billing Service"),
            x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Example Payments"),
            x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "DE"),
        ]),
    )  # fmt: skip
    longer = pki.leaf(CA, pki.name("Billing Service Admin", "Example Payments"))

    assert _token(client_id, SSL_CLIENT_CERT=_pem(same)).status_code == 200
    assert _token(client_id, SSL_CLIENT_CERT=_pem(reordered)).status_code == 401  # RDN order
    assert _token(client_id, SSL_CLIENT_CERT=_pem(longer)).status_code == 401


def test_intermediates_from_tessera_s_listener_complete_the_path() -> None:
    # The bundle holds the root alone; Tessera's listener passes the chain the client sent
    # as SSL_CLIENT_CERT_CHAIN_0… (mod_ssl's names).
    intermediate = pki.certificate_authority("Tessera Test Issuing CA", issuer=CA)
    issued = pki.leaf(intermediate, pki.name("svc"))
    client_id = _tls_client(tls_client_auth_subject_dn="CN=svc,O=Tessera Tests,C=DE")

    with_chain = _token(
        client_id, SSL_CLIENT_CERT=_pem(issued), SSL_CLIENT_CERT_CHAIN_0=_pem(intermediate)
    )
    without = _token(client_id, SSL_CLIENT_CERT=_pem(issued))

    assert with_chain.status_code == 200, with_chain.content
    assert without.status_code == 401


def test_without_a_client_ca_no_certificate_authenticates_tls_client_auth(settings) -> None:
    settings.MTLS_CLIENT_CA_FILE = None
    client_id = _tls_client(tls_client_auth_subject_dn="CN=svc,O=Tessera Tests,C=DE")

    assert _token(client_id, SSL_CLIENT_CERT=_pem(pki.leaf(CA, pki.name("svc")))).status_code == 401


MALFORMED = {
    "not PEM": "hello",
    "a truncated PEM": _pem(pki.leaf(CA, pki.name("svc")))[:300],
    "PEM of garbage": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    "non-ASCII": "-----BEGIN CERTIFICATE-----\n\u00e9\n-----END CERTIFICATE-----\n",
    "huge": "A" * 100_000,
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_certificate_is_no_certificate_never_a_500(value: str) -> None:
    client_id = _tls_client(tls_client_auth_subject_dn="CN=svc,O=Tessera Tests,C=DE")

    from_listener = _token(client_id, SSL_CLIENT_CERT=value)
    from_proxy = _token(client_id, REMOTE_ADDR="10.9.0.1", HTTP_X_CLIENT_CERT=quote(value))
    rfc9440 = _token(client_id, REMOTE_ADDR="10.9.0.1", HTTP_X_CLIENT_CERT=f":{value}:")

    for response in (from_listener, from_proxy, rfc9440):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


def test_a_trusted_proxy_may_send_rfc_9440_base64_der_and_nobody_else_may(caplog) -> None:
    client_id = _tls_client(tls_client_auth_subject_dn="CN=svc,O=Tessera Tests,C=DE")
    issued = pki.leaf(CA, pki.name("svc"))
    header = f":{base64.b64encode(issued.der).decode()}:"
    client_cert._warned_untrusted = False

    with caplog.at_level(logging.WARNING, logger="tessera.mtls"):
        trusted = _token(client_id, REMOTE_ADDR="10.9.0.1", HTTP_X_CLIENT_CERT=header)
        untrusted = [
            _token(client_id, REMOTE_ADDR="10.9.0.2", HTTP_X_CLIENT_CERT=header) for _ in range(2)
        ]

    assert trusted.status_code == 200
    assert [r.status_code for r in untrusted] == [401, 401]
    warnings = [r for r in caplog.records if "not a trusted proxy" in r.getMessage()]
    assert len(warnings) == 1  # once per process, not once per request


def test_the_header_name_is_configurable(settings) -> None:
    settings.MTLS_CLIENT_CERT_HEADER = "Client-Cert"
    client_id = _tls_client(tls_client_auth_subject_dn="CN=svc,O=Tessera Tests,C=DE")
    issued = pki.leaf(CA, pki.name("svc"))
    header = f":{base64.b64encode(issued.der).decode()}:"

    old_name = _token(client_id, REMOTE_ADDR="10.9.0.1", HTTP_X_CLIENT_CERT=header)
    new_name = _token(client_id, REMOTE_ADDR="10.9.0.1", HTTP_CLIENT_CERT=header)

    assert (old_name.status_code, new_name.status_code) == (401, 200)


@pytest.fixture
def bound_admin_token() -> Callable[[], tuple[str, pki.Issued]]:
    """An admin-scope token issued to an administrator over mutual TLS: bound to the
    certificate of the (first-party) client that asked for it."""

    def make() -> tuple[str, pki.Issued]:
        admin = user_create(email="ops@example.com", password=PASSWORD, staff_role="administrator")
        client, secret = client_create(
            name="Ops tool", redirect_uris=[REDIRECT_URI], grant_types=["authorization_code"],
            skip_consent=True,
        )  # fmt: skip
        consent_grant(user_id=admin.pk, client=client, scopes=["openid", "admin"])
        issued = pki.leaf(None, pki.name("ops tool"))
        http = HttpClient(SSL_CLIENT_CERT=_pem(issued))
        force_sign_in(http, admin)
        tokens = Flow(http, RegisteredClient(client.client_id, secret)).tokens(scope="openid admin")
        return tokens["access_token"], issued

    return make


def test_the_admin_api_refuses_a_bound_token_without_its_certificate(bound_admin_token) -> None:
    token, issued = bound_admin_token()
    headers = {"Authorization": f"Bearer {token}"}

    with_it = HttpClient(SSL_CLIENT_CERT=_pem(issued)).get("/api/v1/clients", headers=headers)
    without = HttpClient().get("/api/v1/clients", headers=headers)
    another = HttpClient(SSL_CLIENT_CERT=_pem(pki.leaf(None, pki.name("ops tool")))).get(
        "/api/v1/clients", headers=headers
    )

    assert with_it.status_code == 200, with_it.content
    for refused in (without, another):
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused["WWW-Authenticate"]


def test_discovery_names_the_mtls_endpoint_aliases_when_there_is_a_listener(settings) -> None:
    settings.MTLS_BASE_URL = "https://mtls.idp.example.com:8443"
    views._metadata.cache_clear()
    try:
        metadata = HttpClient().get("/.well-known/openid-configuration").json()
    finally:
        views._metadata.cache_clear()

    assert metadata["mtls_endpoint_aliases"] == {
        "token_endpoint": "https://mtls.idp.example.com:8443/oauth/token",
        "userinfo_endpoint": "https://mtls.idp.example.com:8443/oauth/userinfo",
        "introspection_endpoint": "https://mtls.idp.example.com:8443/oauth/introspect",
        "revocation_endpoint": "https://mtls.idp.example.com:8443/oauth/revoke",
        "pushed_authorization_request_endpoint": "https://mtls.idp.example.com:8443/oauth/par",
    }
    assert metadata["tls_client_certificate_bound_access_tokens"] is True


def test_introspection_revocation_and_par_authenticate_a_certificate_client_too() -> None:
    # grants/base.authenticated_client is every client-authenticating endpoint's road.
    client, _ = client_create(
        name="svc", redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "client_credentials"],
        token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_subject_dn="CN=svc,O=Tessera Tests,C=DE",
    )  # fmt: skip
    pem = _pem(pki.leaf(CA, pki.name("svc")))
    pkce = new_pkce()
    requests = {
        "/oauth/introspect": ({"token": "not-a-token"}, 200),
        "/oauth/revoke": ({"token": "not-a-token"}, 200),
        "/oauth/par": (
            {"response_type": "code", "redirect_uri": REDIRECT_URI, "scope": "openid",
             "code_challenge": pkce.challenge, "code_challenge_method": "S256"},
            201,
        ),
    }  # fmt: skip
    for path, (data, status) in requests.items():
        body = urlencode({**data, "client_id": client.client_id})
        form = "application/x-www-form-urlencoded"
        with_it = HttpClient().post(path, body, content_type=form, SSL_CLIENT_CERT=pem)
        without = HttpClient().post(path, body, content_type=form)
        assert with_it.status_code == status, (path, with_it.content)
        assert without.status_code == 401, path
        assert without.json()["error"] == "invalid_client"


def test_a_signed_certificate_with_an_undecodable_extension_proves_nothing() -> None:
    # Well-formed enough to load (cryptography parses extensions lazily), signed by the CA,
    # but its subjectAltName is not DER: refused as no match, not a 500.
    broken = pki.leaf(CA, pki.name("svc"))
    builder = (
        x509.CertificateBuilder()
        .subject_name(broken.certificate.subject)
        .issuer_name(CA.certificate.subject)
        .public_key(broken.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.NOW - datetime.timedelta(hours=1))
        .not_valid_after(pki.NOW + datetime.timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x03\x01"),
            critical=False,
        )
    )
    pem = builder.sign(CA.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
    by_dns = _tls_client(tls_client_auth_san_dns="svc.example.com")
    by_dn = _tls_client(tls_client_auth_subject_dn="CN=svc,O=Tessera Tests,C=DE")

    for client_id in (by_dns, by_dn):
        response = _token(client_id, SSL_CLIENT_CERT=pem)
        assert response.status_code == 401, response.content
        assert response.json()["error"] == "invalid_client"
