"""Registering a client's RFC 8705 metadata: `createclient`, the console and the admin API, all
through services.client_configure and mtls.registration_set. Exactly one certificate
identifier for tls_client_auth (§2.1.2), x5c certificates for self_signed_tls_client_auth
(§2.2.2), confidential clients only; bad input is a field's error (400, CommandError), never
a 500; changes are client.changed events naming the fields, a jwks by its thumbprints."""

from __future__ import annotations

import json
import re
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient

from apps.core.models import SecurityEvent
from apps.tokens import clients
from apps.tokens.models import Client
from tests.console.conftest import access_token, bearer, csrf_token, operator, staff
from tests.mtls import pki

pytestmark = pytest.mark.django_db

__all__ = ["operator", "staff"]  # the console's fixtures, used here

DN = "CN=billing,O=Example,C=DE"


def _createclient(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command(
        "createclient", "--name", "svc", "--grant", "client_credentials", "--json", *args,
        stdout=out,
    )  # fmt: skip
    answer: dict[str, Any] = json.loads(out.getvalue())
    return answer


def test_createclient_registers_each_method(tmp_path) -> None:
    by_dn = _createclient("--auth-method", "tls_client_auth", "--tls-subject-dn", DN)
    by_uri = _createclient(
        "--auth-method", "tls_client_auth", "--tls-san-uri", "spiffe://example.com/svc",
        "--bound-tokens",
    )  # fmt: skip
    jwks_file = tmp_path / "jwks.json"
    issued = pki.leaf(None, pki.name("svc"))
    jwks_file.write_text(json.dumps(issued.jwks()))
    self_signed = _createclient(
        "--auth-method", "self_signed_tls_client_auth", "--jwks-file", str(jwks_file)
    )

    assert by_dn["client_secret"] is None  # the certificate is the only credential
    client = Client.objects.get(client_id=by_dn["client_id"])
    assert (client.token_endpoint_auth_method, client.tls_client_auth_subject_dn) == (
        "tls_client_auth",
        DN,
    )
    assert clients.authenticate(client.client_id, "") is None
    assert not check_password("", client.client_secret)  # a secret nobody was given
    bound = Client.objects.get(client_id=by_uri["client_id"])
    assert bound.tls_client_auth_san_uri == "spiffe://example.com/svc"
    assert bound.tls_client_certificate_bound_access_tokens is True
    assert Client.objects.get(client_id=self_signed["client_id"]).jwks == issued.jwks()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--auth-method", "tls_client_auth"], "exactly one"),
        (["--auth-method", "tls_client_auth", "--tls-subject-dn", DN,
          "--tls-san-dns", "svc.example.com"], "exactly one"),
        (["--auth-method", "tls_client_auth", "--tls-subject-dn", "not a DN"], "RFC 4514"),
        (["--auth-method", "tls_client_auth", "--tls-san-ip", "10.0.0.300"], "IPv4 or IPv6"),
        (["--auth-method", "tls_client_auth", "--tls-san-dns", "a b.example"], "DNS name"),
        (["--auth-method", "tls_client_auth", "--tls-san-uri", "no-scheme"], "absolute URI"),
        (["--auth-method", "tls_client_auth", "--tls-san-email", "nobody"], "email address"),
        (["--tls-subject-dn", DN], "only for tls_client_auth"),
        (["--auth-method", "self_signed_tls_client_auth"], "x5c"),
        (["--auth-method", "tls_client_auth", "--tls-subject-dn", DN, "--client-secret",
          "s" * 40], "no secret"),
    ],
)  # fmt: skip
def test_createclient_refuses_bad_metadata(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _createclient(*args)
    assert not Client.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('{"keys": "none"}', "JWK Set"),
        ('{"keys": [{"kty": "EC", "x5c": ["%%%"]}]}', "base64 DER"),
        ('{"keys": [{"kty": "EC", "x5c": ["aGVsbG8="]}]}', "base64 DER"),  # base64, not DER
        ("[1, 2]", "JWK Set"),
    ],
)
def test_createclient_refuses_a_bad_jwks_file(tmp_path, content: str, message: str) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(content)

    with pytest.raises(CommandError, match=message):
        _createclient("--auth-method", "self_signed_tls_client_auth", "--jwks-file", str(jwks_file))
    with pytest.raises(CommandError, match="jwks-file"):
        _createclient("--jwks-file", str(tmp_path / "missing.json"))


def test_a_public_client_cannot_use_certificate_authentication() -> None:
    with pytest.raises(CommandError, match="public client"):
        call_command(
            "createclient", "--name", "app", "--public", "--redirect-uri",
            "https://app.example/cb", "--auth-method", "tls_client_auth", "--tls-subject-dn", DN,
            stdout=StringIO(),
        )  # fmt: skip


# --- console --------------------------------------------------------------------------------


def _form(staff: HttpClient, path: str, **fields: Any) -> Any:
    page = staff.get(path)
    data = {
        "csrfmiddlewaretoken": csrf_token(page.content), "name": "Billing",
        "grant_types": ["client_credentials"], "id_token_alg": "RS256", "require_pkce": "on",
        **fields,
    }  # fmt: skip
    return staff.post(path, data)


def test_the_console_registers_a_tls_client_without_a_secret(staff: HttpClient, operator) -> None:
    response = _form(
        staff, "/console/clients/register/", token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_san_dns="billing.example.com",
        tls_client_certificate_bound_access_tokens="on",
    )  # fmt: skip

    assert response.status_code == 200
    assert b'class="secret-value"' not in response.content
    assert b"authenticates with its certificate" in response.content
    client = Client.objects.get(name="Billing")
    assert client.tls_client_auth_san_dns == "billing.example.com"
    assert client.tls_client_certificate_bound_access_tokens
    page = staff.get(f"/console/clients/{client.client_id}/")
    assert b"billing.example.com" in page.content
    assert b"Rotate secret" not in page.content
    rotate = staff.get(f"/console/clients/{client.client_id}/secret/", follow=True)
    assert b"authenticates with its certificate" in rotate.content  # refused, not a 500


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"token_endpoint_auth_method": "tls_client_auth"}, "tls_client_auth_subject_dn",
         b"exactly one"),
        ({"token_endpoint_auth_method": "tls_client_auth",
          "tls_client_auth_subject_dn": "CN=x,,"}, "tls_client_auth_subject_dn", b"RFC 4514"),
        ({"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": "{oops"},
         "jwks", b"valid JSON"),
        ({"token_endpoint_auth_method": "self_signed_tls_client_auth",
          "jwks": '{"keys": []}'}, "jwks", b"x5c"),
        ({"token_endpoint_auth_method": "password"}, "token_endpoint_auth_method",
         b"Select a valid choice"),
    ],
)  # fmt: skip
def test_the_console_form_shows_each_error_on_its_field(
    staff: HttpClient, fields: dict[str, str], field: str, message: bytes
) -> None:
    response = _form(staff, "/console/clients/register/", **fields)

    assert response.status_code == 400
    error = re.search(rf'id="id_{field}_error">([^<]+)<'.encode(), response.content)
    assert error, response.content.decode()[-3000:]
    assert message in error.group(1)
    assert not Client.objects.exists()


def test_editing_the_method_records_the_change_and_drops_the_secret(
    staff: HttpClient, operator
) -> None:
    registered = _createclient()  # a secret client
    client_id = registered["client_id"]
    issued = pki.leaf(None, pki.name("svc"))

    response = _form(
        staff, f"/console/clients/{client_id}/edit/", name="svc",
        token_endpoint_auth_method="self_signed_tls_client_auth", jwks=json.dumps(issued.jwks()),
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[-2000:]
    client = Client.objects.get(client_id=client_id)
    assert client.token_endpoint_auth_method == "self_signed_tls_client_auth"
    assert not check_password(registered["client_secret"], client.client_secret)  # gone
    event = SecurityEvent.objects.filter(event_type="client.changed", resource_id=client_id).get()
    assert event.actor_id == str(operator.pk)
    assert event.metadata["changed"] == ["token_endpoint_auth_method", "jwks"]
    assert event.metadata["after"]["jwks"] == [issued.thumbprint]  # not the whole set
    assert event.metadata["before"] == {"token_endpoint_auth_method": "", "jwks": []}
    edit_page = staff.get(f"/console/clients/{client_id}/edit/")
    assert issued.jwks()["keys"][0]["x5c"][0].encode() in edit_page.content  # shown to edit


# --- admin API ------------------------------------------------------------------------------


def test_the_api_registers_and_edits_the_metadata(operator) -> None:
    api = HttpClient(headers=bearer(access_token(operator, "openid admin")))
    issued = pki.leaf(None, pki.name("svc"))

    created = api.post(
        "/api/v1/clients",
        json.dumps({"name": "svc", "grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "tls_client_auth",
                    "tls_client_auth_subject_dn": DN}),
        content_type="application/json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["client_secret"] is None
    assert body["token_endpoint_auth_method"] == "tls_client_auth"
    assert body["tls_client_auth_subject_dn"] == DN
    assert body["tls_client_certificate_bound_access_tokens"] is False

    changed = api.patch(
        f"/api/v1/clients/{body['client_id']}",
        json.dumps({"token_endpoint_auth_method": "self_signed_tls_client_auth",
                    "tls_client_auth_subject_dn": "", "jwks": issued.jwks(),
                    "tls_client_certificate_bound_access_tokens": True}),
        content_type="application/json",
    )  # fmt: skip
    assert changed.status_code == 200, changed.content
    assert changed.json()["jwks"] == issued.jwks()
    assert changed.json()["tls_client_certificate_bound_access_tokens"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"token_endpoint_auth_method": "tls_client_auth"}, "tls_client_auth_subject_dn"),
        ({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "x"},
         "tls_client_auth_san_ip"),
        ({"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": 3}},
         "jwks"),
        ({"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": "text"}, "jwks"),
        ({"token_endpoint_auth_method": "mtls"}, "token_endpoint_auth_method"),
        ({"tls_client_certificate_bound_access_tokens": "yes"},
         "tls_client_certificate_bound_access_tokens"),
        ({"public": True, "redirect_uris": ["https://app.example/cb"],
          "grant_types": ["authorization_code"], "token_endpoint_auth_method": "tls_client_auth",
          "tls_client_auth_subject_dn": DN}, "token_endpoint_auth_method"),
    ],
)  # fmt: skip
def test_bad_metadata_through_the_api_is_a_400_naming_the_field(
    operator, body: dict[str, Any], field: str
) -> None:
    api = HttpClient(headers=bearer(access_token(operator, "openid admin")))
    before = Client.objects.count()

    response = api.post(
        "/api/v1/clients",
        json.dumps({"name": "svc", "grant_types": ["client_credentials"], **body}),
        content_type="application/json",
    )

    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert Client.objects.count() == before
