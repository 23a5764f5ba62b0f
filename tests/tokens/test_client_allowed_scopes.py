"""Per-client allowed scopes and resources (OWASP ASVS 10.4.11: the authorization server only
assigns a client the scopes it needs; ASVS 9.2.4: tokens are audience-restricted, to the
audiences the client is registered for, RFC 8707).

A scope off the client's list is invalid_scope (RFC 6749 §3.3, §4.1.2.1, §5.2) and a resource
off it invalid_target (RFC 8707 §2), at /authorize, at /oauth/par and at the token endpoint
for every grant; a grant made before the list was narrowed keeps only what is still on it.
Defaults: a new client gets what its registration implies and the default audience only;
migration 0012 gave every existing client what it could be granted before.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client as HttpClient

from apps.sessions.services import session_end
from apps.tokens import clients_admin
from apps.tokens.models import Client, OfflineGrant
from apps.tokens.resources import ANY_RESOURCE, MAX_ALLOWED_RESOURCES
from apps.tokens.services import client_create, consent_grant
from apps.tokens.validation import validate_access_token
from tests.console.conftest import (
    access_token,
    bearer,
    csrf_token,
    operator,  # noqa: F401 - a fixture
    staff,  # noqa: F401 - a fixture
)
from tests.rp import REDIRECT_URI, RegisteredClient, new_verifier
from tests.tokens.conftest import (
    TOKEN,
    Flow,
    client_redirect,
    form_post,
    new_pkce,
    unverified_payload,
)

pytestmark = pytest.mark.django_db

API = "https://api.example.com/"
OTHER_API = "https://billing.example.com/v1"
# A value a description must never repeat (tests/hardening/test_no_reflection.py).
MARKER = "ECHO7"
HOSTILE_RESOURCE = f"https://{MARKER.lower()}.example.net/x"
PAR = "/oauth/par"
MIGRATION = importlib.import_module("apps.tokens.migrations.0012_client_allowed_scopes_resources")


def _client(rp: RegisteredClient) -> Client:
    return Client.objects.get(client_id=rp.client_id)


def _narrow(rp: RegisteredClient, **changes: Any) -> None:
    """An operator changes the client's lists (the service the console and the API call)."""
    clients_admin.client_update(client=_client(rp), actor_id=None, **changes)


def _signed_in_flow(signed_in: HttpClient, person, rp: RegisteredClient, scope: str) -> Flow:
    consent_grant(user_id=person.pk, client=_client(rp), scopes=scope.split())
    return Flow(signed_in, rp)


def _token_error(response: Any) -> dict[str, str]:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body: dict[str, str] = response.json()
    return body


# --- defaults ---------------------------------------------------------------------------------


def test_a_new_client_gets_what_its_registration_implies_and_the_default_audience(
    register,
) -> None:
    # ASVS 10.4.11: an explicit list, nothing a grant does not use
    web = _client(register())
    assert web.allowed_scopes.split() == ["openid", "profile", "email", "offline_access"]
    assert web.allowed_resources == ""
    code_only = _client(register(grant_types=["authorization_code"]))
    assert code_only.allowed_scopes.split() == ["openid", "profile", "email"]
    first_party = _client(register(skip_consent=True))
    assert "admin" in first_party.allowed_scopes.split()
    service = _client(register(grant_types=["client_credentials"], redirect_uris=[]))
    assert service.allowed_scopes == ""


def test_registration_refuses_a_list_the_client_could_never_use(register) -> None:
    cases = [
        ({"allowed_scopes": ["openid", "phone"]}, "allowed_scopes"),
        ({"allowed_scopes": ["admin"]}, "allowed_scopes"),  # not first-party
        ({"grant_types": ["authorization_code"], "allowed_scopes": ["offline_access"]},
         "allowed_scopes"),
        ({"allowed_resources": ["/relative"]}, "allowed_resources"),
        ({"allowed_resources": ["https://user@api.example.com/"]}, "allowed_resources"),
        ({"allowed_resources": [f"{API}#frag"]}, "allowed_resources"),
        ({"allowed_resources": [API, ANY_RESOURCE]}, "allowed_resources"),
        ({"allowed_resources": [f"https://api{n}.example.com/" for n in range(51)]},
         "allowed_resources"),
    ]  # fmt: skip
    for options, field in cases:
        with pytest.raises(ValidationError) as refused:
            register(**options)
        assert list(refused.value.message_dict) == [field], options


def test_discovery_still_lists_every_scope_the_server_defines(client, register) -> None:
    register(allowed_scopes=["openid"])
    metadata = client.get("/.well-known/openid-configuration").json()
    assert metadata["scopes_supported"] == list(settings.SCOPES)


# --- the authorization request, pushed or not -----------------------------------------------


def test_authorize_refuses_a_scope_off_the_clients_list(signed_in, person, register) -> None:
    # RFC 6749 §4.1.2.1 invalid_scope, back to the client, naming our scope
    rp = register(allowed_scopes=["openid", "profile"])
    flow = _signed_in_flow(signed_in, person, rp, "openid profile")
    answer = client_redirect(flow.authorize(new_pkce(), scope="openid email"))
    assert answer["error"] == "invalid_scope"
    assert answer["error_description"] == "The scope email is not registered for this client."
    assert "code" not in answer


def test_authorize_still_ignores_a_scope_the_server_does_not_define(
    signed_in, person, register
) -> None:
    # OIDC Core §3.1.2.1: unknown values are ignored, not refused; the list changes nothing
    rp = register(allowed_scopes=["openid"])
    flow = _signed_in_flow(signed_in, person, rp, "openid")
    pkce = new_pkce()
    tokens = flow.exchange(flow.code(pkce, scope=f"openid {MARKER}"), pkce.verifier).json()
    assert tokens["scope"] == "openid"


def test_authorize_refuses_a_resource_off_the_list_without_repeating_it(
    signed_in, person, register
) -> None:
    # RFC 8707 §2 invalid_target; the description never reflects the value sent
    rp = register(allowed_resources=[API])
    flow = _signed_in_flow(signed_in, person, rp, "openid profile email")
    answer = client_redirect(flow.authorize(new_pkce(), resource=HOSTILE_RESOURCE))
    assert answer["error"] == "invalid_target"
    assert MARKER.lower() not in answer["error_description"].lower()
    assert "not registered" in answer["error_description"]
    malformed = client_redirect(flow.authorize(new_pkce(), resource=f"{MARKER}-not-a-uri"))
    assert malformed["error"] == "invalid_target"
    assert MARKER not in malformed["error_description"]


def test_a_new_client_may_name_only_the_default_audience(signed_in, person, register) -> None:
    rp = register()
    flow = _signed_in_flow(signed_in, person, rp, "openid profile email")
    refused = client_redirect(flow.authorize(new_pkce(), resource=API))
    assert refused["error"] == "invalid_target"
    pkce = new_pkce()
    code = flow.code(pkce, resource=settings.ACCESS_TOKEN_AUDIENCE)
    response = flow.exchange(code, pkce.verifier, resource=settings.ACCESS_TOKEN_AUDIENCE)
    assert response.status_code == 200, response.content
    assert unverified_payload(response.json()["access_token"])["aud"] == (
        settings.ACCESS_TOKEN_AUDIENCE
    )


@pytest.mark.parametrize(
    ("extra", "error", "description"),
    [
        ({"scope": "openid email"}, "invalid_scope", "The scope email is not registered"),
        ({"resource": HOSTILE_RESOURCE}, "invalid_target", "not registered"),
    ],
)
def test_a_pushed_request_is_held_to_the_lists(client, register, extra, error, description) -> None:
    # RFC 9126 §2.1, §2.3: checked as an authorization request, refused in JSON
    rp = register(allowed_scopes=["openid"], allowed_resources=[API])
    params = {
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid", "code_challenge": new_pkce().challenge,
        "code_challenge_method": "S256", **extra,
    }  # fmt: skip
    body = _token_error(form_post(client, PAR, params, auth=rp))
    assert body["error"] == error
    assert description in body["error_description"]
    assert MARKER.lower() not in body["error_description"].lower()


# --- the token endpoint, every grant -----------------------------------------------------------


def test_a_code_exchange_gets_only_a_registered_resource(signed_in, person, register) -> None:
    rp = register(allowed_resources=[API])
    flow = _signed_in_flow(signed_in, person, rp, "openid profile email")
    pkce = new_pkce()
    refused = flow.exchange(flow.code(pkce), pkce.verifier, resource=OTHER_API)
    assert _token_error(refused)["error"] == "invalid_target"
    pkce = new_pkce()
    granted = flow.exchange(flow.code(pkce, resource=API), pkce.verifier, resource=API)
    assert granted.status_code == 200, granted.content
    assert unverified_payload(granted.json()["access_token"])["aud"] == API


def test_a_refresh_gets_only_a_registered_resource(signed_in, person, register) -> None:
    rp = register(allowed_resources=[API])
    flow = _signed_in_flow(signed_in, person, rp, "openid profile email")
    tokens = flow.tokens()
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refused = form_post(signed_in, TOKEN, {**data, "resource": HOSTILE_RESOURCE}, auth=rp)
    body = _token_error(refused)
    assert body["error"] == "invalid_target"
    assert MARKER.lower() not in body["error_description"].lower()
    granted = form_post(signed_in, TOKEN, {**data, "resource": API}, auth=rp)
    assert granted.status_code == 200, granted.content
    assert unverified_payload(granted.json()["access_token"])["aud"] == API


def test_client_credentials_gets_only_registered_scopes_and_resources(client, register) -> None:
    service = register(
        grant_types=["client_credentials"], redirect_uris=[], skip_consent=True,
        allowed_scopes=[], allowed_resources=[API],
    )  # fmt: skip
    cc = {"grant_type": "client_credentials"}
    admin = _token_error(form_post(client, TOKEN, {**cc, "scope": "admin"}, auth=service))
    assert admin == {
        "error": "invalid_scope",
        "error_description": "The scope admin is not registered for this client.",
    }
    other = _token_error(form_post(client, TOKEN, {**cc, "resource": OTHER_API}, auth=service))
    assert other["error"] == "invalid_target"
    granted = form_post(client, TOKEN, {**cc, "resource": API}, auth=service)
    assert granted.status_code == 200, granted.content
    assert unverified_payload(granted.json()["access_token"])["aud"] == API
    assert "scope" not in granted.json()


# --- a list narrowed after the grant ------------------------------------------------------------


def test_narrowing_the_list_narrows_existing_refresh_tokens(signed_in, person, register) -> None:
    # RFC 6749 §6: a refresh never widens; ASVS 10.4.11: what the client may no longer have is
    # gone from its next token, and asking for it again does not bring it back
    rp = register()
    flow = _signed_in_flow(signed_in, person, rp, "openid profile email")
    tokens = flow.tokens()
    assert tokens["scope"] == "openid profile email"
    _narrow(rp, allowed_scopes=["openid"])
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    resent = form_post(signed_in, TOKEN, {**data, "scope": "openid profile email"}, auth=rp)
    assert resent.status_code == 200, resent.content
    assert resent.json()["scope"] == "openid"
    assert validate_access_token(resent.json()["access_token"])["scope"] == "openid"
    assert "email" not in unverified_payload(resent.json()["id_token"])

    _narrow(rp, allowed_scopes=[])
    again = {"grant_type": "refresh_token", "refresh_token": resent.json()["refresh_token"]}
    body = _token_error(form_post(signed_in, TOKEN, again, auth=rp))
    assert body == {
        "error": "invalid_scope",
        "error_description": "None of the scopes of this refresh token is still allowed to "
        "this client.",
    }


def test_narrowing_between_authorization_and_exchange_narrows_the_code(
    signed_in, person, register
) -> None:
    rp = register()
    flow = _signed_in_flow(signed_in, person, rp, "openid profile email")
    pkce = new_pkce()
    code = flow.code(pkce)
    _narrow(rp, allowed_scopes=["openid", "email"])
    response = flow.exchange(code, pkce.verifier)
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "openid email"


def test_narrowing_the_resources_refuses_them_to_existing_refresh_tokens(
    signed_in, person, register
) -> None:
    rp = register(allowed_resources=[API])
    flow = _signed_in_flow(signed_in, person, rp, "openid profile email")
    tokens = flow.tokens(resource=API)
    _narrow(rp, allowed_resources=[])
    data = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "resource": API,
    }
    assert _token_error(form_post(signed_in, TOKEN, data, auth=rp))["error"] == "invalid_target"


def test_an_offline_grant_ends_with_its_sign_in_once_offline_access_is_taken_off(
    signed_in, person, register
) -> None:
    # OIDC Core §11: offline_access is what lets the chain outlive the sign-in
    rp = register()
    flow = _signed_in_flow(signed_in, person, rp, "openid offline_access")
    tokens = flow.tokens(scope="openid offline_access")  # consented to it already
    assert tokens["scope"] == "openid offline_access"
    grant = OfflineGrant.objects.get(client__client_id=rp.client_id)
    _narrow(rp, allowed_scopes=["openid", "profile", "email"])
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    while_signed_in = form_post(signed_in, TOKEN, data, auth=rp)
    assert while_signed_in.status_code == 200, while_signed_in.content
    assert while_signed_in.json()["scope"] == "openid"
    assert grant.session is not None
    session_end(session=grant.session, reason="logout")
    data["refresh_token"] = while_signed_in.json()["refresh_token"]
    body = _token_error(form_post(signed_in, TOKEN, data, auth=rp))
    assert body["error"] == "invalid_grant"
    assert "offline_access" in body["error_description"]


# --- clients that existed before the lists (migration 0012) ----------------------------------


def test_the_migration_keeps_every_existing_client_working_as_before(
    signed_in, person, register
) -> None:
    third_party = register()
    service = register(grant_types=["client_credentials"], redirect_uris=[], skip_consent=True)
    # as 0011 left them: no list at all
    Client.objects.update(allowed_scopes="", allowed_resources="")
    MIGRATION.keep_what_existing_clients_had(apps, None)

    web = _client(third_party)
    assert web.allowed_scopes.split() == ["openid", "profile", "email", "offline_access"]
    assert web.allowed_resources == ANY_RESOURCE
    assert _client(service).allowed_scopes.split() == [
        scope
        for scope in settings.SCOPES
        if scope != "offline_access"  # no refresh grant
    ]
    # what it got before: admin dropped for a third party (not refused), any resource
    flow = _signed_in_flow(signed_in, person, third_party, "openid profile email")
    pkce = new_pkce()
    code = flow.code(pkce, scope="openid admin", resource=OTHER_API)
    tokens = flow.exchange(code, pkce.verifier, resource=OTHER_API).json()
    assert tokens["scope"] == "openid"
    assert unverified_payload(tokens["access_token"])["aud"] == OTHER_API
    cc = {"grant_type": "client_credentials", "scope": "openid admin", "resource": OTHER_API}
    answer = form_post(signed_in, TOKEN, cc, auth=service)
    assert answer.status_code == 200, answer.content
    assert answer.json()["scope"] == "admin"


# --- operators: the console's form and the admin API -----------------------------------------


def test_the_console_form_sets_both_lists_and_names_the_field_at_fault(
    staff,  # noqa: F811 - the fixture
    register,
) -> None:
    rp = register()
    path = f"/console/clients/{rp.client_id}/edit/"
    page = staff.get(path)
    assert page.status_code == 200
    assert b'name="allowed_scopes"' in page.content
    client = _client(rp)
    form = {
        "csrfmiddlewaretoken": csrf_token(page.content), "name": client.name,
        "redirect_uris": REDIRECT_URI, "grant_types": ["authorization_code", "refresh_token"],
        "id_token_alg": "RS256", "require_pkce": "on", "allowed_scopes": ["openid", "email"],
        "allowed_resources": f"{API}\n{OTHER_API}",
    }  # fmt: skip
    saved = staff.post(path, form)
    assert saved.status_code == 302, saved.content[:2000]
    client.refresh_from_db()
    assert client.allowed_scopes == "openid email"
    assert client.allowed_resources.split() == [API, OTHER_API]
    bad = staff.post(path, {**form, "allowed_resources": "not a uri"})
    assert bad.status_code == 400
    assert b'id="id_allowed_resources_error"' in bad.content
    unknown = staff.post(path, {**form, "allowed_scopes": ["openid", "phone"]})
    assert unknown.status_code == 400
    assert b'id="id_allowed_scopes_error"' in unknown.content


@pytest.fixture
def admin_api(operator) -> HttpClient:  # noqa: F811 - the fixture
    """A script with an administrator's admin-scoped token (tests/console/conftest.py)."""
    return HttpClient(headers=bearer(access_token(operator, "openid admin")))


def _patch(http: HttpClient, client_id: str, body: dict[str, Any]) -> Any:
    return http.patch(
        f"/api/v1/clients/{client_id}", json.dumps(body), content_type="application/json"
    )


def test_the_admin_api_sets_both_lists_and_refuses_bad_ones_naming_the_field(
    admin_api, register
) -> None:
    rp = register()
    shown = admin_api.get(f"/api/v1/clients/{rp.client_id}").json()
    assert shown["allowed_scopes"] == ["openid", "profile", "email", "offline_access"]
    assert shown["allowed_resources"] == []
    changed = _patch(admin_api, rp.client_id, {"allowed_scopes": ["openid"],
                                               "allowed_resources": [API]})  # fmt: skip
    assert changed.status_code == 200, changed.content
    assert changed.json()["allowed_scopes"] == ["openid"]
    assert changed.json()["allowed_resources"] == [API]
    oversized = [f"https://api{n}.example.com/" for n in range(MAX_ALLOWED_RESOURCES + 1)]
    for body, field in [
        ({"allowed_scopes": ["openid", "phone"]}, "allowed_scopes"),
        ({"allowed_scopes": ["admin"]}, "allowed_scopes"),
        ({"allowed_scopes": "openid"}, "allowed_scopes"),
        ({"allowed_resources": ["/relative"]}, "allowed_resources"),
        ({"allowed_resources": [f"{API}#x"]}, "allowed_resources"),
        ({"allowed_resources": oversized}, "allowed_resources"),
        ({"allowed_resources": ["x" * 2001]}, "allowed_resources"),
    ]:
        refused = _patch(admin_api, rp.client_id, body)
        assert refused.status_code == 400, (body, refused.content[:300])
        assert field in refused.json(), (body, refused.json())
    assert _client(rp).allowed_scopes == "openid"  # nothing refused was saved

    registered = admin_api.post(
        "/api/v1/clients",
        json.dumps({"name": "Billing", "grant_types": ["client_credentials"]}),
        content_type="application/json",
    )
    assert registered.status_code == 201, registered.content
    assert registered.json()["allowed_scopes"] == []
    assert registered.json()["allowed_resources"] == []


# --- a relying-party library: Authlib ----------------------------------------------------------


@pytest.fixture
def authlib_rp(db) -> Iterator[OAuth2Session]:
    """Authlib's OAuth2Session for a client registered for two scopes and one API."""
    client, secret = client_create(
        name="API client", redirect_uris=[REDIRECT_URI], allowed_scopes=["openid", "profile"],
        allowed_resources=[API],
    )  # fmt: skip
    session = OAuth2Session(
        client.client_id, secret, redirect_uri=REDIRECT_URI, scope="openid profile",
        code_challenge_method="S256",
    )  # fmt: skip
    yield session
    session.close()


@pytest.mark.django_db(transaction=True)
def test_authlib_gets_a_token_for_its_registered_resource_and_scopes(
    live_server, hosted_pages, person, authlib_rp
) -> None:
    # RFC 8707 §2.1, §2.2: the resource at authorization and token request alike
    session = authlib_rp
    metadata = requests.get(f"{live_server.url}/.well-known/openid-configuration", timeout=10)
    endpoints = metadata.json()
    verifier = new_verifier()
    url, state = session.create_authorization_url(
        endpoints["authorization_endpoint"], code_verifier=verifier, nonce=new_verifier(),
        resource=API,
    )  # fmt: skip
    response = hosted_pages.visit(url)
    assert response.is_redirect, response.text[:1000]
    location = response.headers["Location"]
    assert parse_qs(urlsplit(location).query)["state"] == [state]
    token = session.fetch_token(
        endpoints["token_endpoint"], authorization_response=location, code_verifier=verifier,
        resource=API,
    )  # fmt: skip
    assert token["scope"] == "openid profile"
    assert unverified_payload(token["access_token"])["aud"] == API
    refreshed = session.refresh_token(
        endpoints["token_endpoint"], refresh_token=token["refresh_token"], resource=API
    )
    assert refreshed["scope"] == "openid profile"
    assert unverified_payload(refreshed["access_token"])["aud"] == API
