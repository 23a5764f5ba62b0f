"""Mutual TLS (RFC 8705) with Tessera behind a real nginx that terminates TLS, asks for a
client certificate (optional_no_ca) and forwards it in X-Client-Cert; Tessera trusts nginx's
address only. Every certificate is made here and presented in a real TLS handshake by a real
client library (requests, Authlib).

- §2.1 tls_client_auth: a certificate of the client CA naming the registered subject DN or SAN.
- §2.2 self_signed_tls_client_auth: one of the certificates registered in the client's jwks.
- §3 certificate-bound tokens: cnf x5t#S256, checked at userinfo and reported by
  introspection; a public client's refresh token is bound too (§4).
- The header from anyone but the trusted proxy is ignored (OWASP ASVS 4.0 V1.4).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from cryptography import x509

from apps.accounts.services import user_create
from apps.core.events import EventType
from apps.core.models import SecurityEvent
from apps.tokens.services import client_create
from tests.mtls import pki
from tests.mtls.conftest import Deployment, Pki
from tests.rp import PASSWORD, REDIRECT_URI, Browser
from tests.servers import wait_for
from tests.tokens.conftest import new_pkce

pytestmark = pytest.mark.usefixtures("transactional_db")

TOKEN = "/oauth/token"
USERINFO = "/oauth/userinfo"
INTROSPECT = "/oauth/introspect"
SUBJECT = pki.name("billing-service", "Example Payments")
SUBJECT_DN = "CN=billing-service,O=Example Payments,C=DE"


def _payload(token: str) -> dict[str, Any]:
    """The access token's claims (a JWT; its signature is introspection's to check here)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _post(url: str, data: dict[str, str], certificates: Pki, cert: tuple[str, str] | None,
          **kwargs: Any) -> requests.Response:  # fmt: skip
    return requests.post(
        url, data=data, cert=cert, verify=str(certificates.server_ca_file), timeout=30, **kwargs
    )


def _client_credentials(
    behind_nginx: Deployment, certificates: Pki, client_id: str, cert: tuple[str, str] | None
) -> requests.Response:
    return _post(
        behind_nginx.proxy + TOKEN,
        {"grant_type": "client_credentials", "client_id": client_id},
        certificates,
        cert,
    )


def _tls_client(**registration: Any) -> str:
    client, secret = client_create(
        name="billing", redirect_uris=[], grant_types=["client_credentials"],
        token_endpoint_auth_method="tls_client_auth", **registration,
    )  # fmt: skip
    assert secret is None  # RFC 8705 §2: the certificate is its only credential
    return client.client_id


def _invalid_client(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


def test_tls_client_auth_by_subject_dn_gets_a_token_bound_to_its_certificate(
    behind_nginx: Deployment, certificates: Pki
) -> None:
    client_id = _tls_client(tls_client_auth_subject_dn=SUBJECT_DN)
    issued = pki.leaf(certificates.ca, SUBJECT)  # no subjectAltName: the DN alone names it
    cert = certificates.client_files(issued, "billing")

    response = _client_credentials(behind_nginx, certificates, client_id, cert)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"  # RFC 8705 §3: still a bearer-style type
    assert _payload(body["access_token"])["cnf"] == {"x5t#S256": issued.thumbprint}
    # RFC 8705 §3.2: introspection reports the confirmation to the resource server
    introspected = _post(
        behind_nginx.proxy + INTROSPECT,
        {"token": body["access_token"], "client_id": client_id},
        certificates,
        cert,
    )
    assert introspected.status_code == 200, introspected.text
    assert introspected.json()["active"] is True
    assert introspected.json()["cnf"] == {"x5t#S256": issued.thumbprint}


def test_a_san_dns_client_authenticates_through_authlib(
    behind_nginx: Deployment, certificates: Pki
) -> None:
    client_id = _tls_client(tls_client_auth_san_dns="Billing.Example.com")
    issued = pki.leaf(
        certificates.ca, pki.name("anything"), sans=[x509.DNSName("billing.example.com")]
    )
    # Authlib's OAuth2Session, its client authentication "none": client_id in the body, the
    # certificate in the handshake (RFC 8705 §2).
    session = OAuth2Session(client_id, token_endpoint_auth_method="none")
    token = session.fetch_token(
        behind_nginx.proxy + TOKEN,
        grant_type="client_credentials",
        cert=certificates.client_files(issued, "billing-dns"),
        verify=str(certificates.server_ca_file),
        timeout=30,
    )

    assert _payload(token["access_token"])["cnf"] == {"x5t#S256": issued.thumbprint}


def test_no_certificate_a_wrong_one_another_clients_or_a_secret_is_invalid_client(
    behind_nginx: Deployment, certificates: Pki
) -> None:
    other_ca = pki.certificate_authority("Not the client CA")
    # (An expired certificate never gets past nginx: optional_no_ca forgives only an unknown
    # issuer. test_certificates.py shows Tessera refuses one itself.)
    refused = {
        "no certificate": None,
        "another subject": pki.leaf(certificates.ca, pki.name("mallory", "Example Payments")),
        "another client's": pki.leaf(certificates.ca, pki.name("other", "Example Payments")),
        "the subject from another CA": pki.leaf(other_ca, SUBJECT),
        "self-signed, same subject": pki.leaf(None, SUBJECT),
        "a server certificate": pki.leaf(certificates.ca, SUBJECT, server=True),  # no clientAuth
    }
    other_id = _tls_client(tls_client_auth_subject_dn="CN=other,O=Example Payments,C=DE")
    failed = []
    for case, issued in refused.items():
        client_id = _tls_client(tls_client_auth_subject_dn=SUBJECT_DN)  # one failure each
        cert = certificates.client_files(issued, f"refused-{case}") if issued else None
        response = _client_credentials(behind_nginx, certificates, client_id, cert)
        assert response.status_code == 401, case
        _invalid_client(response)
        failed.append(client_id)
    # The right certificate with a secret: one method per client (RFC 8705 §2), still refused.
    client_id = _tls_client(tls_client_auth_subject_dn=SUBJECT_DN)
    right = certificates.client_files(pki.leaf(certificates.ca, SUBJECT), "right")
    with_secret = _post(
        behind_nginx.proxy + TOKEN, {"grant_type": "client_credentials"}, certificates, right,
        auth=(client_id, "a-secret-it-never-had-0123456789abcdef"),
    )  # fmt: skip
    _invalid_client(with_secret)
    assert _client_credentials(behind_nginx, certificates, client_id, right).status_code == 200
    # ...and the other client's certificate proves the other client.
    other = certificates.client_files(refused["another client's"], "other")  # type: ignore[arg-type]
    assert _client_credentials(behind_nginx, certificates, other_id, other).status_code == 200

    # Each failure is recorded as a failed client authentication, as a wrong secret is.
    def failures() -> list[SecurityEvent]:
        return list(
            SecurityEvent.objects.filter(
                event_type=EventType.CLIENT_AUTH_FAILED, resource_id__in=[*failed, client_id]
            )
        )

    wait_for(lambda: len(failures()) == len(failed) + 1, 30, "the failures were not recorded")
    methods = sorted(event.metadata["method"] for event in failures())
    assert methods == ["client_secret_basic"] + ["tls_client_auth"] * len(failed)


def test_wrong_certificates_lock_the_client_id_out_as_wrong_secrets_do(
    behind_nginx: Deployment, certificates: Pki
) -> None:
    # Issue 12's lockout: IDP_LOCKOUT_IP_THRESHOLD (5) failures for one client id from one
    # address, and then even the right certificate is answered 429 (no oracle for guesses).
    client_id = _tls_client(tls_client_auth_subject_dn=SUBJECT_DN)
    wrong = certificates.client_files(pki.leaf(None, SUBJECT), "guess")
    right = certificates.client_files(pki.leaf(certificates.ca, SUBJECT), "owner")

    statuses = [
        _client_credentials(behind_nginx, certificates, client_id, wrong).status_code
        for _ in range(5)
    ]
    locked = _client_credentials(behind_nginx, certificates, client_id, right)

    assert statuses == [401] * 5
    assert locked.status_code == 429, locked.text


def test_self_signed_tls_client_auth_accepts_only_the_registered_certificate(
    behind_nginx: Deployment, certificates: Pki
) -> None:
    registered = pki.leaf(None, pki.name("reporting"))
    client, _ = client_create(
        name="reporting", redirect_uris=[], grant_types=["client_credentials"],
        token_endpoint_auth_method="self_signed_tls_client_auth", jwks=registered.jwks(),
    )  # fmt: skip
    same_subject = pki.leaf(None, pki.name("reporting"))  # another key, same name

    ok = _client_credentials(
        behind_nginx, certificates, client.client_id,
        certificates.client_files(registered, "reporting"),
    )  # fmt: skip
    wrong = _client_credentials(
        behind_nginx, certificates, client.client_id,
        certificates.client_files(same_subject, "reporting-other"),
    )  # fmt: skip

    assert ok.status_code == 200, ok.text
    assert _payload(ok.json()["access_token"])["cnf"] == {"x5t#S256": registered.thumbprint}
    _invalid_client(wrong)


def test_the_certificate_header_sent_straight_to_tessera_is_ignored(
    behind_nginx: Deployment, certificates: Pki
) -> None:
    # A client that reaches Tessera without nginx (127.0.0.1 is not a trusted proxy) and sends
    # the header nginx would: a right certificate, but nothing vouches for its possession.
    client_id = _tls_client(tls_client_auth_subject_dn=SUBJECT_DN)
    issued = pki.leaf(certificates.ca, SUBJECT)
    data = {"grant_type": "client_credentials", "client_id": client_id}

    forged = requests.post(
        behind_nginx.direct + TOKEN, data=data,
        headers={"X-Client-Cert": quote(issued.pem.decode())}, timeout=30,
    )  # fmt: skip
    rfc9440 = requests.post(
        behind_nginx.direct + TOKEN, data=data,
        headers={"X-Client-Cert": f":{base64.b64encode(issued.der).decode()}:"}, timeout=30,
    )  # fmt: skip

    _invalid_client(forged)
    _invalid_client(rfc9440)


def test_a_client_requiring_bound_tokens_gets_none_without_a_certificate(
    behind_nginx: Deployment, certificates: Pki
) -> None:
    # A secret client (RFC 6749 §2.3.1) registered with
    # tls_client_certificate_bound_access_tokens (RFC 8705 §3.4)
    client, secret = client_create(
        name="bound", redirect_uris=[], grant_types=["client_credentials"],
        tls_client_certificate_bound_access_tokens=True,
    )  # fmt: skip
    assert secret
    data = {"grant_type": "client_credentials"}
    issued = pki.leaf(None, pki.name("bound"))  # any certificate: the secret authenticates

    without = _post(behind_nginx.proxy + TOKEN, data, certificates, None,
                    auth=(client.client_id, secret))  # fmt: skip
    with_one = _post(
        behind_nginx.proxy + TOKEN, data, certificates,
        certificates.client_files(issued, "bound"), auth=(client.client_id, secret),
    )  # fmt: skip

    assert without.status_code == 400, without.text
    assert without.json()["error"] == "invalid_request"
    assert "RFC 8705" in without.json()["error_description"]
    assert with_one.status_code == 200, with_one.text
    assert _payload(with_one.json()["access_token"])["cnf"] == {"x5t#S256": issued.thumbprint}


def test_a_public_clients_tokens_are_bound_at_userinfo_and_refresh(
    behind_nginx: Deployment, certificates: Pki
) -> None:
    # A public client (an app with its own certificate: RFC 8705 §4, the mTLS alias without
    # client authentication) signs a person in; its tokens are bound to its certificate.
    email = f"mtls-{secrets.token_hex(4)}@example.com"
    user_create(email=email, name="Ada Lovelace", password=PASSWORD)
    client, _ = client_create(
        name="app", redirect_uris=[REDIRECT_URI], public=True, skip_consent=True
    )
    issued = pki.leaf(None, pki.name("app instance"))
    cert = certificates.client_files(issued, "app")
    stranger = certificates.client_files(pki.leaf(None, pki.name("app instance")), "stranger")
    pkce = new_pkce()
    query = urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid email offline_access", "state": "s-1",
        "code_challenge": pkce.challenge, "code_challenge_method": "S256",
    })  # fmt: skip
    browser = Browser(behind_nginx.direct)
    try:
        landed = browser.visit(f"{behind_nginx.direct}/oauth/authorize?{query}", email=email)
    finally:
        browser.http.close()
    assert landed.headers["Location"].startswith(REDIRECT_URI), landed.text

    session = OAuth2Session(
        client.client_id, token_endpoint_auth_method="none", redirect_uri=REDIRECT_URI,
        scope="openid email offline_access", state="s-1",
    )  # fmt: skip
    verify = str(certificates.server_ca_file)
    tokens = session.fetch_token(
        behind_nginx.proxy + TOKEN, authorization_response=landed.headers["Location"],
        code_verifier=pkce.verifier, cert=cert, verify=verify, timeout=30,
    )  # fmt: skip
    access = tokens["access_token"]
    assert _payload(access)["cnf"] == {"x5t#S256": issued.thumbprint}

    def userinfo(cert: tuple[str, str] | None) -> requests.Response:
        return requests.get(
            behind_nginx.proxy + USERINFO, headers={"Authorization": f"Bearer {access}"},
            cert=cert, verify=verify, timeout=30,
        )  # fmt: skip

    assert userinfo(cert).status_code == 200
    assert userinfo(cert).json()["email"] == email
    for refused in (None, stranger):
        answer = userinfo(refused)
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]

    # RFC 8705 §4: the public client's refresh token needs the same certificate.
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
               "client_id": client.client_id}  # fmt: skip
    unproven = _post(behind_nginx.proxy + TOKEN, refresh, certificates, stranger)
    assert unproven.status_code == 400, unproven.text
    assert unproven.json()["error"] == "invalid_grant"
    renewed = _post(behind_nginx.proxy + TOKEN, refresh, certificates, cert)
    assert renewed.status_code == 200, renewed.text
    assert _payload(renewed.json()["access_token"])["cnf"] == {"x5t#S256": issued.thumbprint}


def test_discovery_says_tokens_can_be_certificate_bound(behind_nginx: Deployment) -> None:
    metadata = requests.get(
        behind_nginx.direct + "/.well-known/openid-configuration", timeout=30
    ).json()

    assert metadata["tls_client_certificate_bound_access_tokens"] is True
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(
        metadata["token_endpoint_auth_methods_supported"]
    )
    assert "mtls_endpoint_aliases" not in metadata  # no IDP_MTLS_BASE_URL here
