"""Identity providers in the admin API (issue 17): list, create, read, change and delete
providers with a write-only secret; a person's linked identities and unlinking one. Every
malformed body is a 400 naming the field, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.accounts.services import user_create
from apps.core.events import EventType
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.providers import provider_create, provider_secret
from tests.accounts.factories import OrganizationFactory, RoleFactory
from tests.console.conftest import access_token, audited, bearer
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db

PROVIDERS = "/api/v1/federation/providers"
SECRET = "upstream-secret-value"
BODY = {
    "slug": "acme",
    "name": "Acme SSO",
    "kind": "oidc",
    "issuer": "https://sso.acme.example",
    "client_id": "tessera",
    "client_secret": SECRET,
}


@pytest.fixture
def api(operator) -> HttpClient:
    """An administrator's bearer token (the operator fixture is an administrator)."""
    return HttpClient(headers=bearer(access_token(operator, "openid admin")))


def _send(api: HttpClient, method: str, path: str, body: Any) -> Any:
    return api.generic(method, path, json.dumps(body), content_type="application/json")


@pytest.fixture
def acme(operator) -> Provider:
    return provider_create(actor_id=operator.pk, **BODY)


def test_create_answers_the_provider_without_its_secret(api, operator) -> None:
    OrganizationFactory(slug="acme")
    RoleFactory(name="member")
    rule = {"claim": "groups", "value": "staff", "organization": "acme", "role": "member"}
    response = _send(
        api,
        "POST",
        PROVIDERS,
        BODY | {"extra_params": {"prompt": "login"}, "mapping_rules": [rule], "enabled": False},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert "client_secret" not in body
    assert SECRET not in response.content.decode()
    provider = Provider.objects.get(pk=body["id"])
    assert provider_secret(provider) == SECRET
    assert body | {"created_at": None, "updated_at": None} == {
        "id": str(provider.pk),
        "slug": "acme",
        "name": "Acme SSO",
        "kind": "oidc",
        "issuer": "https://sso.acme.example",
        "client_id": "tessera",
        "client_auth_method": "client_secret_basic",
        "scopes": "openid email profile",
        "extra_params": {"prompt": "login"},
        "use_userinfo": False,
        "enabled": False,
        "jit_provisioning": False,
        "hosted_domains": [],
        "login_domains": [],
        "mapping_rules": [rule],
        "created_at": None,
        "updated_at": None,
        "linked": 0,
    }
    [event] = audited(EventType.FEDERATION_PROVIDER_CHANGED, operator)
    assert event.action == "created"


def test_list_and_read_show_the_people_linked(api, acme) -> None:
    person = user_create(email="ada@example.com", password=PASSWORD)
    FederatedIdentity.objects.create(user=person, provider=acme, subject="u-1")
    [row] = api.get(PROVIDERS).json()["results"]
    assert (row["slug"], row["linked"]) == ("acme", 1)
    assert api.get(f"{PROVIDERS}/{acme.pk}").json()["linked"] == 1


def test_patch_changes_what_it_names_and_keeps_the_secret_unless_given(api, acme) -> None:
    response = _send(api, "PATCH", f"{PROVIDERS}/{acme.pk}", {"name": "Acme", "client_secret": ""})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Acme"
    acme.refresh_from_db()
    assert provider_secret(acme) == SECRET
    response = _send(api, "PATCH", f"{PROVIDERS}/{acme.pk}", {"client_secret": "rotated"})
    assert response.status_code == 200
    acme.refresh_from_db()
    assert provider_secret(acme) == "rotated"
    response = _send(api, "PATCH", f"{PROVIDERS}/{acme.pk}", {"enabled": False})
    assert response.json()["enabled"] is False


def test_delete_is_a_409_while_people_are_linked(api, acme) -> None:
    person = user_create(email="ada@example.com", password=PASSWORD)
    identity = FederatedIdentity.objects.create(user=person, provider=acme, subject="u-1")
    response = api.delete(f"{PROVIDERS}/{acme.pk}")
    assert response.status_code == 409
    assert "1 person is linked through Acme SSO; disable it instead" in response.json()["detail"]
    assert api.delete(f"/api/v1/users/{person.pk}/identities/{identity.pk}").status_code == 204
    assert api.delete(f"{PROVIDERS}/{acme.pk}").status_code == 204
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slug": 12}, "slug"),
        ({"name": ["Acme"]}, "name"),
        ({"kind": "saml"}, "kind"),
        ({"issuer": "http://sso.acme.example"}, "issuer"),
        ({"issuer": "https://" + "a" * 600}, "issuer"),
        ({"client_id": None}, "client_id"),
        ({"client_secret": {"nested": "junk"}}, "client_secret"),
        ({"client_secret": "x" * 20_000}, "client_secret"),
        ({"client_auth_method": "none"}, "client_auth_method"),
        ({"scopes": "profile"}, "scopes"),
        ({"extra_params": {"redirect_uri": "https://evil.example"}}, "extra_params"),
        ({"extra_params": {"prompt": {"nested": ["junk"]}}}, "extra_params"),
        ({"extra_params": "prompt=login"}, "extra_params"),
        ({"enabled": "yes"}, "enabled"),
        ({"use_userinfo": 1}, "use_userinfo"),
        ({"hosted_domains": ["acme.example"]}, "hosted_domains"),
        ({"login_domains": [["acme.example"]]}, "login_domains"),
        ({"login_domains": ["x"] * 51}, "login_domains"),
        ({"mapping_rules": [{"claim": "groups", "value": "staff"}]}, "mapping_rules"),
        ({"mapping_rules": [[1, 2]]}, "mapping_rules"),
        ({"mapping_rules": {"claim": "groups"}}, "mapping_rules"),
        ({"sealed_secret": "AAAA"}, "sealed_secret"),
        ({"linked": 5}, "linked"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, change, field) -> None:
    response = _send(api, "POST", PROVIDERS, BODY | change)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not Provider.objects.exists()


@pytest.mark.parametrize("body", [[], "acme", None, 12, {"slug": None}])
def test_a_body_that_is_not_a_provider_is_a_400(api, body) -> None:
    response = _send(api, "POST", PROVIDERS, body)
    assert response.status_code == 400
    assert response.json()


def test_patch_refuses_unknown_fields_and_bad_values(api, acme) -> None:
    response = _send(api, "PATCH", f"{PROVIDERS}/{acme.pk}", {"enable": False})
    assert response.status_code == 400
    assert response.json() == {"enable": ["This field is not a provider's, or cannot be written."]}
    response = _send(api, "PATCH", f"{PROVIDERS}/{acme.pk}", {"extra_params": {"state": "x"}})
    assert response.status_code == 400
    assert "protocol's own parameter" in response.json()["extra_params"][0]
    response = _send(api, "PATCH", f"{PROVIDERS}/{acme.pk}", "not an object")
    assert response.status_code == 400


def test_a_persons_identities_are_listed_and_unlinked(api, acme, operator) -> None:
    person = user_create(email="ada@example.com", password=PASSWORD)
    identity = FederatedIdentity.objects.create(
        user=person, provider=acme, subject="u-1", email="ada@acme.example", email_verified=True
    )
    body = api.get(f"/api/v1/users/{person.pk}/identities").json()
    [row] = body["results"]
    assert row["provider"] == "acme"
    assert row["provider_name"] == "Acme SSO"
    assert (row["subject"], row["email"], row["email_verified"]) == (
        "u-1",
        "ada@acme.example",
        True,
    )
    assert row["last_used_at"] is None
    # Another person's identity is not found under this one's address.
    other = user_create(email="bob@example.com", password=PASSWORD)
    assert api.delete(f"/api/v1/users/{other.pk}/identities/{identity.pk}").status_code == 404
    assert api.delete(f"/api/v1/users/{person.pk}/identities/{identity.pk}").status_code == 204
    [event] = audited(EventType.FEDERATION_UNLINKED, operator)
    assert event.metadata["reason"] == "operator"
    assert api.get(f"/api/v1/users/{person.pk}/identities").json() == {"results": []}
