"""Second factors in the console and the admin API (issue 15): an operator sees a person's
factors (names, kinds, last used: never secrets) and why a second factor is required of them,
resets them (confirmation, mfa.reset with the actor, sessions ended by default), sets or
clears "MFA required"; an administrator sets an organization's MFA policy and a client's
require_mfa. Bad input is a 400/404/405 with a message, never a 500."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from django.test import Client as HttpClient
from django.test import override_settings

from apps.accounts import directory
from apps.accounts.models import Organization, User
from apps.accounts.services import (
    mfa_requirement_set,
    organization_mfa_policy_set,
    user_create,
)
from apps.core.models import SecurityEvent
from apps.mfa.models import RecoveryCodeSet, TotpDevice, WebAuthnCredential
from apps.mfa.passkeys import webauthn_registration_begin, webauthn_registration_finish
from apps.mfa.recovery import recovery_code_use, recovery_codes_generate
from apps.mfa.totp import totp_confirm, totp_enrol
from apps.sessions.models import LoginSession
from apps.tokens.models import Client
from apps.tokens.services import client_create
from tests.console.conftest import add_session, audited, csrf_token, signed_in_as
from tests.mfa.authenticator import SoftAuthenticator
from tests.rp import REDIRECT_URI

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def enrol_every_factor(user: User) -> dict[str, Any]:
    """A TOTP app, a synced passkey, a device-bound key flagged as cloned, and recovery codes
    with one used: through apps.mfa's own enrolment functions. Returns the secrets, so a
    test can check none reaches a page."""
    with override_settings(ISSUER="https://id.example.com"):  # the passkeys' RP ID
        return _enrol_every_factor(user)


def _enrol_every_factor(user: User) -> dict[str, Any]:
    enrolment = totp_enrol(user=user, name="Work phone", now=NOW)
    totp_confirm(device=enrolment.device, code=pyotp.TOTP(enrolment.secret).at(NOW), now=NOW)
    # a minute apart: factors_of lists by creation time, so the order is certain
    for minute, (name, synced) in enumerate((("iCloud passkey", True), ("YubiKey 5", False))):
        ceremony = webauthn_registration_begin(user=user)
        authenticator = SoftAuthenticator(
            origin="https://id.example.com", rp_id="id.example.com", backup_eligible=synced
        )
        webauthn_registration_finish(
            user=user,
            ceremony_id=ceremony.id,
            response=json.dumps(authenticator.create(ceremony.options_json)),
            name=name,
            now=NOW + timedelta(minutes=minute),
        )
    # test setup: the counter regression apps.mfa.passkeys records on a cloned key
    WebAuthnCredential.objects.filter(user=user, name="YubiKey 5").update(clone_detected_at=NOW)
    codes = recovery_codes_generate(user=user, now=NOW)
    recovery_code_use(user=user, code=codes[0], now=NOW)
    return {"totp_secret": enrolment.secret, "codes": codes}


def _section(page: str) -> str:
    """The person page's Second factors section."""
    match = re.search(r"<h2>Second factors</h2>(.*?)<h2>Memberships</h2>", page, re.S)
    assert match, "no Second factors section"
    return match.group(1)


def _api(role: str = "operator") -> HttpClient:
    return signed_in_as(role, enforce_csrf_checks=False)


def _json(http: HttpClient, method: str, path: str, body: Any = None) -> Any:
    data = "" if body is None else json.dumps(body)
    return http.generic(method, path, data, content_type="application/json")


@pytest.fixture
def acme(person: User) -> Organization:
    """An organization the person belongs to."""
    org = directory.organization_create(name="Acme", slug="acme", actor_id=None)
    member = directory.role_create(name="member", permissions=[], actor_id=None)
    directory.organization_membership_add(organization=org, user=person, role=member, actor_id=None)
    return org


# --- the person page ------------------------------------------------------------------------


def test_the_person_page_lists_factors_and_never_a_secret(viewer: HttpClient, person: User) -> None:
    secrets = enrol_every_factor(person)

    page = viewer.get(f"/console/users/{person.pk}/").content.decode()
    section = _section(page)

    assert "Authenticator app" in section
    assert "Work phone" in section
    assert re.search(r"iCloud passkey</td>.*?passkey</span> may be synced", section, re.S)
    assert re.search(r"YubiKey 5</td>.*?bound to one device.*?cloned</span>", section, re.S)
    assert "Recovery codes" in section
    assert "9 unused" in section
    assert "2026-12-03 12:00" in section  # added and last used, in UTC
    # Never a secret, a code or a key (the TOTP secret, any recovery code, a credential id).
    assert secrets["totp_secret"] not in page
    assert not any(code in page for code in secrets["codes"])
    for credential in WebAuthnCredential.objects.filter(user=person):
        assert bytes(credential.credential_id).hex() not in page
    # a viewer sees no action they may not take
    assert "Reset second factors" not in page
    assert "/mfa/required/" not in page


def test_the_person_page_says_who_requires_a_second_factor(
    operator_staff: HttpClient, person: User, acme: Organization
) -> None:
    organization_mfa_policy_set(organization=acme, required=True, actor_id=None)
    mfa_requirement_set(user=person, required=True, actor_id=None, source="threat")

    section = _section(operator_staff.get(f"/console/users/{person.pk}/").content.decode())

    assert "required</span>" in section
    assert "none enrolled: they enrol one at their next sign-in" in section
    assert "required, set by a threat response" in section
    assert "Acme</a> requires it" in section
    assert f"/console/users/{person.pk}/mfa/required/?required=no" in section
    assert "Reset second factors" not in section  # nothing to reset


def test_a_person_without_factors_or_requirement(viewer: HttpClient, person: User) -> None:
    section = _section(viewer.get(f"/console/users/{person.pk}/").content.decode())

    assert "not used</span> password only" in section
    assert "No second factor enrolled." in section
    assert "none of theirs requires it" in section


def test_the_global_setting_shows_on_the_person_page(
    viewer: HttpClient, person: User, settings: Any
) -> None:
    settings.MFA_REQUIRED = True

    section = _section(viewer.get(f"/console/users/{person.pk}/").content.decode())

    assert "IDP_MFA_REQUIRED" in section
    assert "required</span>" in section


# --- reset ----------------------------------------------------------------------------------


def test_the_reset_confirmation_says_what_goes_and_what_next(
    operator_staff: HttpClient, person: User
) -> None:
    enrol_every_factor(person)
    mfa_requirement_set(user=person, required=True, actor_id=None, source="operator")

    page = operator_staff.get(f"/console/users/{person.pk}/mfa/reset/")

    assert page.status_code == 200
    text = page.content.decode()
    assert f"Reset the second factors of {person.email}?" in text
    assert "This removes 1 authenticator app, 2 security keys or passkeys and" in text
    assert "their recovery codes (9 unused)" in text
    assert "they enrol a new one before they get in" in text
    # "also sign them out everywhere", ticked by default
    assert re.search(r'<input type="checkbox" name="end_sessions"[^>]* checked', text)
    assert 'aria-describedby="id_end_sessions_helptext"' in text
    assert 'id="id_end_sessions_helptext"' in text  # offline access stays: said beside it
    assert TotpDevice.objects.filter(user=person).count() == 1  # the GET changed nothing


def test_without_a_requirement_the_confirmation_says_password_only(
    operator_staff: HttpClient, person: User
) -> None:
    text = operator_staff.get(f"/console/users/{person.pk}/mfa/reset/").content.decode()

    assert "0 authenticator apps, 0 security keys or passkeys and no recovery codes" in text
    assert "they sign in with the password alone" in text


def test_an_operator_resets_factors_and_signs_the_person_out(
    operator_staff: HttpClient, person: User
) -> None:
    enrol_every_factor(person)
    session = add_session(person)
    path = f"/console/users/{person.pk}/mfa/reset/"
    page = operator_staff.get(path)

    done = operator_staff.post(
        path,
        {"csrfmiddlewaretoken": csrf_token(page.content), "end_sessions": "on"},
        follow=True,
    )

    assert done.status_code == 200
    assert f"{person.email}: 4 second factors removed, 1 live session ended." in (
        done.content.decode()
    )
    assert not TotpDevice.objects.filter(user=person).exists()
    assert not WebAuthnCredential.objects.filter(user=person).exists()
    assert not RecoveryCodeSet.objects.filter(user=person).exists()
    [event] = audited("mfa.reset", operator_staff.user)  # type: ignore[attr-defined]
    assert event.user_id == str(person.pk)
    assert event.metadata == {"removed": {"totp": 1, "webauthn": 2, "recovery_codes": 1}}
    session.refresh_from_db()
    assert (session.ended_at is not None, session.end_reason) == (True, "operator")


def test_unticked_the_reset_leaves_sessions(operator_staff: HttpClient, person: User) -> None:
    enrol_every_factor(person)
    session = add_session(person)
    path = f"/console/users/{person.pk}/mfa/reset/"
    page = operator_staff.get(path)

    done = operator_staff.post(path, {"csrfmiddlewaretoken": csrf_token(page.content)}, follow=True)

    assert f"{person.email}: 4 second factors removed." in done.content.decode()
    session.refresh_from_db()
    assert session.ended_at is None
    assert audited("mfa.reset", operator_staff.user)  # type: ignore[attr-defined]


def test_a_viewer_cannot_reset(viewer: HttpClient, person: User) -> None:
    enrol_every_factor(person)
    lax = HttpClient()
    lax.cookies = viewer.cookies

    assert lax.post(f"/console/users/{person.pk}/mfa/reset/", {}).status_code == 403
    assert TotpDevice.objects.filter(user=person).exists()
    assert not SecurityEvent.objects.filter(event_type="mfa.reset").exists()


# --- MFA required, per person ---------------------------------------------------------------


def _confirmed(http: HttpClient, path: str) -> Any:
    page = http.get(path)
    assert page.status_code == 200
    return http.post(path, {"csrfmiddlewaretoken": csrf_token(page.content)}, follow=True)


def _mfa_changes(user: User) -> list[SecurityEvent]:
    return list(
        SecurityEvent.objects.filter(
            event_type="user.changed", user_id=str(user.pk), action="mfa_required_changed"
        ).order_by("occurred_at")
    )


def test_an_operator_requires_mfa_then_lifts_it(operator_staff: HttpClient, person: User) -> None:
    path = f"/console/users/{person.pk}/mfa/required/?required=yes"
    asked = operator_staff.get(path).content.decode()
    assert f"Require a second factor of {person.email}?" in asked
    assert "enrol one first if they have none" in asked
    person.refresh_from_db()
    assert not person.mfa_required  # the GET changed nothing

    done = _confirmed(operator_staff, path)

    assert f"{person.email}: a second factor is now required." in done.content.decode()
    person.refresh_from_db()
    assert (person.mfa_required, person.mfa_required_by) == (True, "operator")
    [event] = _mfa_changes(person)
    assert event.actor_id == str(operator_staff.user.pk)  # type: ignore[attr-defined]
    assert event.metadata == {"mfa_required": True, "source": "operator"}

    lifted = _confirmed(operator_staff, f"/console/users/{person.pk}/mfa/required/?required=no")

    assert "no longer required by their own setting" in lifted.content.decode()
    person.refresh_from_db()
    assert (person.mfa_required, person.mfa_required_by) == (False, "")
    assert len(_mfa_changes(person)) == 2


def test_requiring_it_twice_changes_nothing(operator_staff: HttpClient, person: User) -> None:
    mfa_requirement_set(user=person, required=True, actor_id=None, source="operator")

    done = _confirmed(operator_staff, f"/console/users/{person.pk}/mfa/required/?required=yes")

    assert "nothing changed, a second factor was required already" in done.content.decode()
    assert len(_mfa_changes(person)) == 1


@pytest.mark.parametrize("query", ["", "?required=maybe", "?required=", "?required=YES"])
def test_a_required_link_without_yes_or_no_is_a_400(
    operator_staff: HttpClient, person: User, query: str
) -> None:
    path = f"/console/users/{person.pk}/mfa/required/{query}"

    for response in (operator_staff.get(path), _api().post(path)):
        assert response.status_code == 400
        assert re.search(r"required=yes or required=no|required is yes or no", response.text)
    person.refresh_from_db()
    assert not person.mfa_required


def test_unknown_people_are_404_on_the_mfa_pages(administrator: HttpClient) -> None:
    for path in (
        "/console/users/3f2a6c1e-0000-4000-8000-000000000001/mfa/reset/",
        "/console/users/3f2a6c1e-0000-4000-8000-000000000001/mfa/required/?required=yes",
        "/console/organizations/3f2a6c1e-0000-4000-8000-000000000001/mfa-policy/?required=yes",
    ):
        assert administrator.get(path).status_code == 404, path


# --- an organization's policy ---------------------------------------------------------------


def test_an_administrator_sets_the_organizations_policy(
    administrator: HttpClient, acme: Organization
) -> None:
    page = administrator.get(f"/console/organizations/{acme.pk}/").content.decode()
    path = f"/console/organizations/{acme.pk}/mfa-policy/?required=yes"
    assert path in page
    asked = administrator.get(path).content.decode()
    assert "Require a second factor of every member of Acme?" in asked
    assert "Its 1 member must prove a second factor" in asked

    done = _confirmed(administrator, path)

    assert "Acme requires a second factor." in done.content.decode()
    assert "of every member at sign-in" in done.content.decode()  # the page says so now
    acme.refresh_from_db()
    assert acme.mfa_required
    [event] = audited("permission.changed", administrator.user)  # type: ignore[attr-defined]
    assert event.action == "mfa_policy_changed"
    assert event.metadata == {"before": {"mfa_required": False}, "after": {"mfa_required": True}}


def test_an_operator_does_not_set_an_organizations_policy(
    operator_staff: HttpClient, acme: Organization
) -> None:
    page = operator_staff.get(f"/console/organizations/{acme.pk}/").content.decode()

    assert "/mfa-policy/" not in page
    assert (
        operator_staff.get(f"/console/organizations/{acme.pk}/mfa-policy/?required=yes").status_code
        == 403
    )


# --- clients --------------------------------------------------------------------------------


@pytest.fixture
def shop(db) -> Client:
    client, _ = client_create(
        name="Shop", redirect_uris=[REDIRECT_URI], grant_types=["authorization_code"],
        client_id="shop-web",
    )  # fmt: skip
    return client


def test_require_mfa_in_the_console_client_form(administrator: HttpClient, shop: Client) -> None:
    form = administrator.get("/console/clients/shop-web/edit/")
    assert b'name="require_mfa"' in form.content

    done = administrator.post(
        "/console/clients/shop-web/edit/",
        {
            "csrfmiddlewaretoken": csrf_token(form.content),
            "name": "Shop",
            "redirect_uris": REDIRECT_URI,
            "grant_types": ["authorization_code"],
            "id_token_alg": "RS256",
            "require_pkce": "on",
            "require_mfa": "on",
            "allowed_scopes": shop.allowed_scopes.split(),  # the boxes as the form checks them
        },
        follow=True,
    )

    assert "Saved: require_mfa changed." in done.content.decode()
    assert "every sign-in to it reaches the MFA level" in done.content.decode()
    shop.refresh_from_db()
    assert shop.require_mfa
    [event] = audited("client.changed", administrator.user)  # type: ignore[attr-defined]
    assert event.metadata == {
        "changed": ["require_mfa"],
        "before": {"require_mfa": False},
        "after": {"require_mfa": True},
    }


def test_require_mfa_through_the_api(shop: Client) -> None:
    http = _api("administrator")

    changed = _json(http, "PATCH", "/api/v1/clients/shop-web", {"require_mfa": True})

    assert changed.status_code == 200
    assert changed.json()["require_mfa"] is True
    shop.refresh_from_db()
    assert shop.require_mfa
    registered = _json(
        http,
        "POST",
        "/api/v1/clients",
        {"name": "Vault", "redirect_uris": [REDIRECT_URI], "require_mfa": True},
    )
    assert registered.status_code == 201
    assert registered.json()["require_mfa"] is True
    assert Client.objects.get(client_id=registered.json()["client_id"]).require_mfa
    plain = _json(
        http, "POST", "/api/v1/clients", {"name": "Blog", "redirect_uris": [REDIRECT_URI]}
    )
    assert plain.json()["require_mfa"] is False


@pytest.mark.parametrize("value", ["yes", 1, "true", None, []])
def test_a_non_boolean_require_mfa_is_a_400(shop: Client, value: Any) -> None:
    response = _json(
        _api("administrator"), "PATCH", "/api/v1/clients/shop-web", {"require_mfa": value}
    )

    assert response.status_code == 400
    assert response.json()["require_mfa"]
    shop.refresh_from_db()
    assert not shop.require_mfa


# --- the admin API --------------------------------------------------------------------------


def test_the_api_lists_factors_and_why_mfa_is_required(person: User, acme: Organization) -> None:
    secrets = enrol_every_factor(person)
    organization_mfa_policy_set(organization=acme, required=True, actor_id=None)
    http = _api("viewer")

    response = http.get(f"/api/v1/users/{person.pk}/factors")

    assert response.status_code == 200
    body = response.json()
    assert [(f["kind"], f["name"], f["passkey"], f["cloned"]) for f in body["results"]] == [
        ("totp", "Work phone", False, False),
        ("webauthn", "iCloud passkey", True, False),
        ("webauthn", "YubiKey 5", False, True),
        ("recovery_codes", "Recovery codes", False, False),
    ]
    assert body["results"][3]["remaining"] == 9
    assert body["results"][0]["last_used_at"] is not None
    assert body["mfa_required"] is True
    assert body["required_by"] == {
        "person": False,
        "set_by": "",
        "organizations": [{"id": str(acme.pk), "name": "Acme"}],
        "everyone": False,
    }
    assert secrets["totp_secret"] not in response.text
    assert not any(code in response.text for code in secrets["codes"])
    # reading a person's factors is an operator's read of their data (GDPR Art. 30)
    assert SecurityEvent.objects.filter(
        event_type="operator.viewed_user", user_id=str(person.pk)
    ).exists()


def test_the_api_resets_factors_and_ends_sessions_by_default(person: User) -> None:
    enrol_every_factor(person)
    session = add_session(person)
    http = _api()

    response = _json(http, "POST", f"/api/v1/users/{person.pk}/factors/reset")

    assert response.status_code == 200
    assert response.json() == {
        "removed": {"totp": 1, "webauthn": 2, "recovery_codes": 1},
        "sessions_ended": 1,
    }
    session.refresh_from_db()
    assert session.ended_at is not None
    [event] = audited("mfa.reset", http.user)  # type: ignore[attr-defined]
    assert event.user_id == str(person.pk)


def test_the_api_reset_may_leave_sessions(person: User) -> None:
    enrol_every_factor(person)
    session = add_session(person)

    response = _json(
        _api(), "POST", f"/api/v1/users/{person.pk}/factors/reset", {"end_sessions": False}
    )

    assert response.json()["sessions_ended"] == 0
    session.refresh_from_db()
    assert session.ended_at is None
    assert not TotpDevice.objects.filter(user=person).exists()


def test_the_api_sets_and_clears_mfa_required(person: User) -> None:
    http = _api()
    path = f"/api/v1/users/{person.pk}/mfa-required"

    set_ = _json(http, "PUT", path, {"mfa_required": True})

    assert set_.status_code == 200
    assert set_.json()["changed"] is True
    assert set_.json()["user"]["mfa_required"] is True
    assert set_.json()["user"]["mfa_required_by"] == "operator"
    again = _json(http, "PUT", path, {"mfa_required": True})
    assert again.json()["changed"] is False
    cleared = _json(http, "PUT", path, {"mfa_required": False})
    assert cleared.json()["user"] == {
        **cleared.json()["user"], "mfa_required": False, "mfa_required_by": ""
    }  # fmt: skip
    assert [e.metadata["mfa_required"] for e in _mfa_changes(person)] == [True, False]
    assert all(e.actor_id == str(http.user.pk) for e in _mfa_changes(person))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body", [{}, {"mfa_required": "yes"}, {"mfa_required": 1}, {"mfa_required": None}, []]
)
def test_a_non_boolean_mfa_required_is_a_400(person: User, body: Any) -> None:
    response = _json(_api(), "PUT", f"/api/v1/users/{person.pk}/mfa-required", body)

    assert response.status_code == 400
    assert response.json()
    person.refresh_from_db()
    assert not person.mfa_required
    assert not _mfa_changes(person)


def test_a_body_that_is_not_json_is_a_400(person: User) -> None:
    response = _api().generic(
        "PUT", f"/api/v1/users/{person.pk}/mfa-required", "{nope", content_type="application/json"
    )

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_a_non_boolean_end_sessions_is_a_400(person: User) -> None:
    enrol_every_factor(person)

    response = _json(
        _api(), "POST", f"/api/v1/users/{person.pk}/factors/reset", {"end_sessions": "no"}
    )

    assert response.status_code == 400
    assert "JSON boolean" in response.json()["end_sessions"][0]
    assert TotpDevice.objects.filter(user=person).exists()  # nothing was removed


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/users/3f2a6c1e-0000-4000-8000-000000000001/factors", 404),
        ("POST", "/api/v1/users/3f2a6c1e-0000-4000-8000-000000000001/factors/reset", 404),
        ("PUT", "/api/v1/users/3f2a6c1e-0000-4000-8000-000000000001/mfa-required", 404),
        ("GET", "/api/v1/users/not-a-uuid/factors", 404),
        ("POST", "/api/v1/users/{id}/factors", 405),
        ("GET", "/api/v1/users/{id}/factors/reset", 405),
        ("DELETE", "/api/v1/users/{id}/factors/reset", 405),
        ("GET", "/api/v1/users/{id}/mfa-required", 405),
        ("POST", "/api/v1/users/{id}/mfa-required", 405),
        ("PATCH", "/api/v1/users/{id}/mfa-required", 405),
    ],
)
def test_unknown_ids_and_wrong_methods(person: User, method: str, path: str, status: int) -> None:
    body = {"mfa_required": True} if "3f2a" in path else None
    response = _json(_api("administrator"), method, path.format(id=person.pk), body)

    assert response.status_code == status
    if status != 404 or "not-a-uuid" not in path:  # the URL resolver's 404 is a page
        assert response.json()["detail"]


def test_the_organization_patch_sets_its_mfa_policy(acme: Organization) -> None:
    http = _api("administrator")

    response = _json(http, "PATCH", f"/api/v1/organizations/{acme.pk}", {"mfa_required": True})

    assert response.status_code == 200
    assert response.json()["mfa_required"] is True
    assert response.json()["name"] == "Acme"  # the rest as it was
    acme.refresh_from_db()
    assert acme.mfa_required
    [event] = audited("permission.changed", http.user)  # type: ignore[attr-defined]
    assert event.action == "mfa_policy_changed"
    both = _json(
        http,
        "PATCH",
        f"/api/v1/organizations/{acme.pk}",
        {"name": "Acme Inc", "mfa_required": False},
    )
    assert (both.json()["name"], both.json()["mfa_required"]) == ("Acme Inc", False)


def test_a_non_boolean_organization_mfa_required_is_a_400(acme: Organization) -> None:
    response = _json(
        _api("administrator"), "PATCH", f"/api/v1/organizations/{acme.pk}", {"mfa_required": "on"}
    )

    assert response.status_code == 400
    assert response.json()["mfa_required"]
    acme.refresh_from_db()
    assert not acme.mfa_required


def test_an_operator_cannot_patch_an_organizations_policy(acme: Organization) -> None:
    response = _json(
        _api("operator"), "PATCH", f"/api/v1/organizations/{acme.pk}", {"mfa_required": True}
    )

    assert response.status_code == 403
    acme.refresh_from_db()
    assert not acme.mfa_required


def test_the_sessions_a_reset_ends_are_the_persons_only(person: User) -> None:
    other = user_create(email="bob@example.com")
    theirs, bobs = add_session(person), add_session(other)

    _json(_api(), "POST", f"/api/v1/users/{person.pk}/factors/reset")

    assert LoginSession.objects.get(pk=theirs.pk).ended_at is not None
    assert LoginSession.objects.get(pk=bobs.pk).ended_at is None
