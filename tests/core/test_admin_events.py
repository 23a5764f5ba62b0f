"""Every addition, change and deletion an operator makes in the Django admin records exactly one
security event, with the operator as actor and the person affected as user
(apps/core/receivers.py). OWASP ASVS 7.2.2: administrative actions are logged with who did them.
"""

from __future__ import annotations

from typing import Any

import pytest
from django import forms
from django.contrib.auth.models import Group as StaffGroup
from django.test import Client as HttpClient
from django.urls import reverse

from apps.accounts.models import (
    GroupMembership,
    Organization,
    OrganizationMembership,
    User,
    WorkspaceMembership,
)
from apps.core.models import SecurityEvent
from apps.tokens.models import AccessToken, Client
from tests.accounts.factories import (
    GroupMembershipFactory,
    OrganizationFactory,
    OrganizationMembershipFactory,
    PermissionFactory,
    RoleFactory,
    UserFactory,
    WorkspaceMembershipFactory,
)
from tests.console.conftest import access_token
from tests.events import recorded

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(admin_client: HttpClient) -> HttpClient:
    """A superuser's browser on the admin, past its first request (whose new network flags
    the force_login session: an event of its own)."""
    admin_client.get(reverse("admin:index"))
    return admin_client


def url(model: type, page: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}", args=args)


def unchanged(http: HttpClient, path: str) -> dict[str, Any]:
    """What the admin page's form posts when nothing is edited (with its inline formsets)."""
    context = http.get(path).context
    page_forms = [context["adminform"].form]
    for inline in context["inline_admin_formsets"]:
        page_forms += [inline.formset.management_form, *inline.formset.forms]
    data: dict[str, Any] = {}
    for form in page_forms:
        for field in form:
            value = field.value()
            if value is None or value is False:
                continue
            widget = field.field.widget
            if isinstance(widget, forms.MultiWidget):  # the admin's split date and time
                for index, part in enumerate(widget.decompress(value)):
                    data[f"{field.html_name}_{index}"] = part
            else:
                data[field.html_name] = "on" if value is True else value
            if field.field.show_hidden_initial:  # as the page renders a callable default
                data[field.html_initial_name] = data[field.html_name]
    return data


def one_event(events: list[SecurityEvent], admin_user: User, **expected: object) -> SecurityEvent:
    [event] = events
    assert event.actor_id == str(admin_user.pk)
    assert event.success is True
    for name, value in expected.items():
        assert getattr(event, name) == value, name
    return event


# --- memberships, roles, permissions ------------------------------------------------------


def test_adding_a_member_to_an_organization(operator: HttpClient, admin_user: User) -> None:
    member, organization, role = UserFactory(), OrganizationFactory(), RoleFactory()

    with recorded() as events:
        response = operator.post(
            url(OrganizationMembership, "add"),
            {"user": member.pk, "organization": organization.pk, "role": role.pk},
        )

    assert response.status_code == 302
    membership = OrganizationMembership.objects.get(user=member)
    event = one_event(
        events,
        admin_user,
        event_type="membership.changed",
        action="added",
        user_id=str(member.pk),
        resource_type="accounts.organizationmembership",
        resource_id=str(membership.pk),
        severity="medium",
        compliance_tags=["SOC2"],
    )
    assert event.metadata == {"object": str(membership), "change": "Added."}


@pytest.mark.parametrize(
    ("factory", "model"),
    [
        (OrganizationMembershipFactory, OrganizationMembership),
        (WorkspaceMembershipFactory, WorkspaceMembership),
        (GroupMembershipFactory, GroupMembership),
    ],
)
def test_removing_a_member(
    operator: HttpClient, admin_user: User, factory: type, model: type
) -> None:
    membership = factory()

    with recorded() as events:
        response = operator.post(url(model, "delete", membership.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not model.objects.exists()
    one_event(
        events,
        admin_user,
        event_type="membership.changed",
        action="deleted",
        user_id=str(membership.user_id),
        resource_type=f"accounts.{model._meta.model_name}",
        resource_id=str(membership.pk),
    )


def test_a_member_added_on_the_organization_page_is_one_event(
    operator: HttpClient, admin_user: User
) -> None:
    organization, member, role = OrganizationFactory(), UserFactory(), RoleFactory()
    path = url(Organization, "change", organization.pk)
    data = unchanged(operator, path)
    data.update(
        {"memberships-TOTAL_FORMS": "1", "memberships-0-user": member.pk,
         "memberships-0-role": role.pk}
    )  # fmt: skip

    with recorded() as events:
        response = operator.post(path, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert OrganizationMembership.objects.filter(user=member, organization=organization).exists()
    event = one_event(
        events,
        admin_user,
        event_type="membership.changed",
        action="changed",
        resource_type="accounts.organization",
        resource_id=str(organization.pk),
    )
    assert "Added organization membership" in event.metadata["change"]


def test_granting_a_role_a_permission(operator: HttpClient, admin_user: User) -> None:
    role, permission = RoleFactory(), PermissionFactory()
    path = url(type(role), "change", role.pk)
    data = unchanged(operator, path)
    data["permissions"] = [permission.pk]

    with recorded() as events:
        response = operator.post(path, data)

    assert response.status_code == 302
    assert list(role.permissions.all()) == [permission]
    event = one_event(
        events,
        admin_user,
        event_type="permission.changed",
        action="changed",
        user_id="",
        resource_type="accounts.role",
        resource_id=str(role.pk),
    )
    assert event.metadata["change"] == "Changed Permissions."


def test_creating_a_staff_permission_group(operator: HttpClient, admin_user: User) -> None:
    with recorded() as events:
        response = operator.post(url(StaffGroup, "add"), {"name": "auditors"})

    assert response.status_code == 302
    one_event(
        events,
        admin_user,
        event_type="permission.changed",
        action="added",
        resource_type="auth.group",
        resource_id=str(StaffGroup.objects.get(name="auditors").pk),
    )


# --- accounts -----------------------------------------------------------------------------


def test_adding_an_account_is_user_created(operator: HttpClient, admin_user: User) -> None:
    with recorded() as events:
        response = operator.post(
            url(User, "add"),
            {"email": "grace@example.com", "name": "Grace", "usable_password": "false"},
        )

    assert response.status_code == 302
    grace = User.objects.get(email="grace@example.com")
    one_event(
        events,
        admin_user,
        event_type="user.created",
        action="added",
        user_id=str(grace.pk),
        resource_type="user",
        resource_id=str(grace.pk),
        compliance_tags=["SOC2", "GDPR"],
    )


def test_renaming_someone_is_user_changed_and_staff_fields_stay_read_only(
    operator: HttpClient, admin_user: User
) -> None:
    """Roles change on the console's Staff page only (its last-administrator guard)."""
    person = UserFactory()
    path = url(User, "change", person.pk)
    data = unchanged(operator, path)
    data["name"] = "Grace Renamed"
    data["is_staff"] = "on"  # ignored: read-only here
    data["staff_role"] = "administrator"
    data["is_superuser"] = "on"

    with recorded() as events:
        response = operator.post(path, data)

    assert response.status_code == 302
    person.refresh_from_db()
    assert (person.name, person.is_staff, person.staff_role, person.is_superuser) == (
        "Grace Renamed",
        False,
        "",
        False,
    )
    event = one_event(
        events,
        admin_user,
        event_type="user.changed",
        action="changed",
        user_id=str(person.pk),
        resource_type="user",
        resource_id=str(person.pk),
        severity="medium",
    )
    assert event.metadata["change"] == "Changed Name."


def test_deleting_an_account_is_user_deleted(operator: HttpClient, admin_user: User) -> None:
    person = UserFactory()

    with recorded() as events:
        response = operator.post(url(User, "delete", person.pk), {"post": "yes"})

    assert response.status_code == 302
    one_event(
        events,
        admin_user,
        event_type="user.deleted",
        action="deleted",
        user_id=str(person.pk),
        resource_id=str(person.pk),
        severity="high",
    )


# --- clients and other records ------------------------------------------------------------


def test_changing_a_client_names_it_by_client_id(
    operator: HttpClient, admin_user: User, rp
) -> None:
    client = Client.objects.get(client_id=rp.client_id)
    path = url(Client, "change", client.pk)
    data = unchanged(operator, path)
    data["redirect_uris"] = "https://rp.example.com/callback https://rp.example.com/other"

    with recorded() as events:
        response = operator.post(path, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    event = one_event(
        events,
        admin_user,
        event_type="client.changed",
        action="changed",
        resource_type="client",
        resource_id=rp.client_id,
    )
    assert event.metadata["change"] == "Changed Redirect URIs."


def test_deleting_a_client(operator: HttpClient, admin_user: User, rp) -> None:
    client = Client.objects.get(client_id=rp.client_id)

    with recorded() as events:
        response = operator.post(url(Client, "delete", client.pk), {"post": "yes"})

    assert response.status_code == 302
    one_event(
        events,
        admin_user,
        event_type="client.deleted",
        action="deleted",
        resource_type="client",
        resource_id=rp.client_id,
        severity="high",
    )


def test_any_other_admin_change_is_admin_changed(
    operator: HttpClient, admin_user: User, person
) -> None:
    access_token(person, "openid email")
    token = AccessToken.objects.get()
    path = url(AccessToken, "change", token.pk)
    data = unchanged(operator, path)
    data["scope"] = "openid"

    with recorded() as events:
        response = operator.post(path, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    one_event(
        events,
        admin_user,
        event_type="admin.changed",
        action="changed",
        user_id=str(person.pk),
        resource_type="tokens.accesstoken",
        resource_id=str(token.pk),
    )


def test_bulk_delete_is_not_offered(operator: HttpClient) -> None:
    # Its LogEntries are bulk-inserted without a signal: the deletions would go unrecorded.
    OrganizationFactory()
    page = operator.get(url(Organization, "changelist"))

    assert page.status_code == 200
    assert b"delete_selected" not in page.content
