"""Identity providers in the console (issue 17): staff read them, administrators add, edit,
enable, disable and delete them (a secret is written, never shown), a provider people are
linked through is not deleted; a person's page lists their linked identities and an
operator unlinks one behind a confirmation."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client as HttpClient

from apps.accounts.services import user_create
from apps.core.events import EventType
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.providers import provider_create, provider_secret
from tests.console.conftest import audited, confirm, csrf_token
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db

PROVIDERS = "/console/federation/providers/"
SECRET = "upstream-secret-value"


@pytest.fixture
def acme(operator) -> Provider:
    return provider_create(
        actor_id=operator.pk,
        slug="acme",
        name="Acme SSO",
        kind="oidc",
        issuer="https://sso.acme.example",
        client_id="tessera",
        client_secret=SECRET,
    )


@pytest.fixture
def person(db):
    return user_create(email="ada@example.com", password=PASSWORD)


@pytest.fixture
def linked(acme, person) -> FederatedIdentity:
    return FederatedIdentity.objects.create(
        user=person,
        provider=acme,
        subject="acme-user-7",
        email="ada@acme.example",
        email_verified=True,
        display="ada",
    )


FORM = {
    "slug": "github",
    "name": "GitHub",
    "kind": "github",
    "issuer": "",
    "client_id": "Iv1.abc",
    "client_auth_method": "client_secret_post",
    "client_secret": SECRET,
    "scopes": "",
    "extra_params": "allow_signup=false",
    "enabled": "on",
    "hosted_domains": "",
    "login_domains": "",
    "mapping_rules": "",
}


def _post(http: HttpClient, path: str, data: dict[str, Any]) -> Any:
    token = csrf_token(http.get(path).content)
    return http.post(path, {**data, "csrfmiddlewaretoken": token})


def test_the_list_shows_kind_issuer_state_and_people_linked(viewer, acme, linked) -> None:
    page = viewer.get(PROVIDERS)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Acme SSO" in html
    assert "OpenID Connect" in html
    assert "https://sso.acme.example" in html
    assert '<span class="pill ok">enabled</span>' in html
    [row] = page.context["rows"]
    assert row.linked == 1
    assert "Add a provider" not in html  # a viewer is offered nothing they may not do
    assert "/console/federation/providers/" in viewer.get("/console/").content.decode()  # nav


def test_an_administrator_adds_a_provider_and_the_secret_is_never_shown(staff, operator) -> None:
    response = _post(staff, f"{PROVIDERS}new/", FORM)
    assert response.status_code == 302
    provider = Provider.objects.get(slug="github")
    assert provider.issuer == "https://github.com"
    assert provider.extra_params == {"allow_signup": "false"}
    assert provider_secret(provider) == SECRET
    assert response["Location"] == f"{PROVIDERS}{provider.pk}/"
    detail = staff.get(response["Location"]).content.decode()
    # RFC 9700 §4.4.2: one redirect URI per provider, to register at it.
    assert f"{settings.ISSUER}/login/federated/github/callback" in detail
    edit = staff.get(f"{PROVIDERS}{provider.pk}/edit/").content.decode()
    for html in (detail, edit):
        assert SECRET not in html
    assert "Leave empty to keep the current one" in edit
    [event] = audited(EventType.FEDERATION_PROVIDER_CHANGED, operator)
    assert event.action == "created"


def test_a_wrong_field_is_a_400_under_that_field_without_echoing_the_secret(staff) -> None:
    response = _post(
        staff, f"{PROVIDERS}new/", FORM | {"kind": "oidc", "issuer": "http://x.example"}
    )
    assert response.status_code == 400
    assert "An issuer is an https:// URL" in " ".join(response.context["form"].errors["issuer"])
    assert SECRET not in response.content.decode()
    assert "Type it again" in response.content.decode()  # not left to fail on "required"
    for junk, field, message in (
        ({"mapping_rules": "[{"}, "mapping_rules", "This is not JSON"),
        ({"mapping_rules": '[{"claim": "g"}]'}, "mapping_rules", "Rule 1: value"),
        ({"extra_params": "state=abc"}, "extra_params", "protocol's own parameter"),
        ({"extra_params": "no equals sign"}, "extra_params", "Line 1: write NAME=VALUE"),
        ({"kind": "saml"}, "kind", "Select a valid choice"),
        ({"slug": "x" * 64}, "slug", "at most 63 characters"),
        ({"client_secret": ""}, "client_secret", "is required"),
    ):
        response = _post(staff, f"{PROVIDERS}new/", FORM | junk)
        assert response.status_code == 400, junk
        assert message in " ".join(response.context["form"].errors[field]), junk
    assert not Provider.objects.exists()


def test_an_edit_keeps_the_secret_when_left_empty(staff, acme, operator) -> None:
    path = f"{PROVIDERS}{acme.pk}/edit/"
    initial = staff.get(path).context["form"].initial
    data = {k: v for k, v in initial.items() if v not in (False, None)}
    response = _post(staff, path, data | {"name": "Acme", "enabled": "on", "client_secret": ""})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.name == "Acme"
    assert provider_secret(acme) == SECRET
    events = audited(EventType.FEDERATION_PROVIDER_CHANGED, operator)
    assert [(e.action, e.metadata["changed"]) for e in events][-1] == ("updated", ["name"])
    assert events[-1].metadata["secret_changed"] is False

    response = _post(staff, path, data | {"name": "Acme", "enabled": "on", "client_secret": "new"})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert provider_secret(acme) == "new"


def test_disable_and_enable_behind_a_confirmation(staff, acme) -> None:
    page = staff.get(f"{PROVIDERS}{acme.pk}/disable/")
    assert b"Its button leaves the sign-in page" in page.content
    acme.refresh_from_db()
    assert acme.enabled  # the GET changed nothing
    confirm(staff, f"{PROVIDERS}{acme.pk}/disable/")
    acme.refresh_from_db()
    assert not acme.enabled
    confirm(staff, f"{PROVIDERS}{acme.pk}/enable/")
    acme.refresh_from_db()
    assert acme.enabled


def test_delete_is_refused_with_a_clear_message_while_people_are_linked(
    staff, acme, linked
) -> None:
    page = staff.get(f"{PROVIDERS}{acme.pk}/delete/", follow=True)
    assert "1 person is linked through Acme SSO; disable it instead" in page.content.decode()
    response = staff.post(
        f"{PROVIDERS}{acme.pk}/delete/",
        {"csrfmiddlewaretoken": csrf_token(staff.get(f"{PROVIDERS}new/").content)},
        follow=True,
    )
    assert "1 person is linked through Acme SSO" in response.content.decode()
    assert Provider.objects.filter(pk=acme.pk).exists()


def test_delete_of_a_provider_nobody_uses(staff, acme) -> None:
    response = confirm(staff, f"{PROVIDERS}{acme.pk}/delete/")
    assert "Acme SSO deleted." in response.content.decode()
    assert not Provider.objects.filter(pk=acme.pk).exists()


def test_an_unknown_provider_is_404(staff) -> None:
    assert staff.get(f"{PROVIDERS}3f2a6c1e-0000-4000-8000-000000000001/").status_code == 404


def test_the_person_page_lists_linked_identities(viewer, person, linked) -> None:
    html = viewer.get(f"/console/users/{person.pk}/").content.decode()
    assert "Linked identities" in html
    assert "acme-user-7" in html
    assert "ada@acme.example" in html
    assert "Unlink" not in html  # a viewer may not


def test_an_operator_unlinks_an_identity_behind_a_confirmation(
    operator_staff, person, linked
) -> None:
    path = f"/console/users/{person.pk}/identities/{linked.pk}/unlink/"
    page = operator_staff.get(f"/console/users/{person.pk}/").content.decode()
    assert path in page
    question = operator_staff.get(path).content.decode()
    assert "Unlink Acme SSO from ada@example.com?" in question
    assert "The sessions signed in through Acme SSO end now." in question
    assert " 0 other" not in question
    assert FederatedIdentity.objects.filter(pk=linked.pk).exists()  # the GET changed nothing
    response = confirm(operator_staff, path)
    assert "Acme SSO unlinked from ada@example.com." in response.content.decode()
    assert not FederatedIdentity.objects.filter(pk=linked.pk).exists()
    [event] = audited(EventType.FEDERATION_UNLINKED, operator_staff.user)
    assert event.user_id == str(person.pk)
    assert event.metadata == {"provider": "acme", "subject": "acme-user-7", "reason": "operator"}
    # Someone else's identity id under this person's address is not found.
    assert operator_staff.get(path).status_code == 404
