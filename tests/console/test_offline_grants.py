"""A person's offline grants (OIDC Core §11, scope offline_access) in the console and the admin
API: listed while in force, revoked one by one, all at once or with everything else, by staff
only, with the operator on record as the actor (OWASP ASVS 7.2.2) and the client's tokens
refused at once afterwards."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone

from apps.sessions.models import LoginSession
from apps.tokens.models import OfflineGrant
from apps.tokens.services import offline_grant_revoke
from tests.console.conftest import (
    SOME_ID,
    Offline,
    access_token,
    audited,
    bearer,
    confirm,
    csrf_token,
    offline_grant,
)
from tests.events import recorded
from tests.tokens.conftest import TOKEN, form_post, userinfo

pytestmark = pytest.mark.django_db

SCOPES = ["openid", "email", "offline_access"]
# apps/console/api/serializers.py OfflineGrantSerializer
GRANT_FIELDS = {
    "id", "user", "user_email", "client_id", "client_name", "scopes", "live", "session",
    "created_at", "last_used_at", "expires_at", "revoked_at", "revoke_reason",
}  # fmt: skip
CONSOLE_PAGES = [
    f"/console/offline-grants/{SOME_ID}/revoke/",
    f"/console/users/{SOME_ID}/offline-grants/revoke/",
    f"/console/users/{SOME_ID}/revoke-all/",
]
API_CALLS = [
    ("get", "/api/v1/users/{user}/offline-grants"),
    ("post", "/api/v1/users/{user}/offline-grants/revoke"),
    ("post", "/api/v1/users/{user}/revoke-all"),
    ("get", "/api/v1/offline-grants/{grant}"),
    ("post", "/api/v1/offline-grants/{grant}/revoke"),
]
API_CHANGES = [(method, path) for method, path in API_CALLS if method == "post"]


@pytest.fixture
def admin_token(operator) -> str:
    return access_token(operator, "openid admin")


@pytest.fixture
def mail(person) -> Offline:
    """Ada let "Mail app" stay connected while she is signed out."""
    return offline_grant(person, name="Mail app")


@pytest.fixture
def looking(staff: HttpClient) -> HttpClient:
    """The operator's browser past its first request (whose new network flags the
    force_login session: an event of its own)."""
    staff.get("/console/")
    return staff


def offline_table(html: bytes) -> str:
    """The user page's "Offline access" table: the sessions table and the events name the
    same clients, so absence is checked here only."""
    page = html.decode()
    start = page.index('<table class="table compact offline-grants">')
    return page[start : page.index("</table>", start)]


def user_page(staff: HttpClient, person) -> bytes:
    response = staff.get(f"/console/users/{person.pk}/")
    assert response.status_code == 200
    content: bytes = response.content
    return content


def live_sessions(person) -> set[uuid.UUID]:
    return set(
        LoginSession.objects.filter(user=person, ended_at__isnull=True).values_list("pk", flat=True)
    )


def refresh_refused(offline: Offline) -> None:
    """RFC 6749 §5.2: the client's refresh token is invalid_grant, and the answer says why."""
    data = {"grant_type": "refresh_token", "refresh_token": offline.refresh_token}
    response = form_post(HttpClient(), TOKEN, data, auth=offline.rp)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_grant"
    assert response.json()["error_description"].strip()


def access_refused(offline: Offline) -> None:
    # RFC 6750 §3.1: a revoked access token is invalid_token
    response = userinfo(HttpClient(), offline.access_token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def revoked_by(offline: Offline, reason: str) -> None:
    grant = OfflineGrant.objects.get(pk=offline.grant.pk)
    assert grant.revoked_at is not None
    assert grant.revoke_reason == reason


def still_live(offline: Offline) -> None:
    grant = OfflineGrant.objects.get(pk=offline.grant.pk)
    assert (grant.revoked_at, grant.revoke_reason) == (None, "")
    assert userinfo(HttpClient(), offline.access_token).status_code == 200


# --- the user page ---------------------------------------------------------------------------


def test_user_page_lists_the_offline_grants_in_force(staff, person) -> None:
    live = offline_grant(person, name="Mail app")
    revoked = offline_grant(person, name="Calendar app")
    offline_grant_revoke(grant=revoked.grant, reason="api")
    expired = offline_grant(person, name="Notes app")
    OfflineGrant.objects.filter(pk=expired.grant.pk).update(expires_at=timezone.now())
    idle = offline_grant(person, name="Photos app")
    unused_since = timezone.now() - timedelta(seconds=settings.OFFLINE_ACCESS_IDLE_TIMEOUT + 60)
    OfflineGrant.objects.filter(pk=idle.grant.pk).update(last_used_at=unused_since)

    page = user_page(staff, person)
    table = offline_table(page)

    assert "Mail app" in table
    assert live.rp.client_id in table
    assert "<code>openid</code> <code>email</code> <code>offline_access</code>" in table
    assert str(live.grant.session_id)[:8] in table  # the sign-in it was given in
    assert f'href="/console/offline-grants/{live.grant.pk}/revoke/"' in table
    for ended in (revoked, expired, idle):  # OIDC Core §11: revoked, past lifetime, idle
        assert ended.grant.client.name not in table
        assert ended.rp.client_id not in table
        assert f"/console/offline-grants/{ended.grant.pk}/revoke/" not in page.decode()
    assert "No offline access." not in table
    assert f"/console/users/{person.pk}/offline-grants/revoke/" in page.decode()


def test_a_person_without_offline_grants_sees_none(staff, person, person_session) -> None:
    page = user_page(staff, person)

    assert '<td colspan="7" class="muted">No offline access.</td>' in offline_table(page)
    assert f"/console/users/{person.pk}/offline-grants/revoke/" not in page.decode()
    assert f"/console/users/{person.pk}/revoke-all/" in page.decode()  # sessions remain


# --- who may use the console's actions -----------------------------------------------------


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client: HttpClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/login?next={path}"


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_people_who_are_not_staff_are_refused(outsider: HttpClient, path: str) -> None:
    # OWASP ASVS 4.1.1: enforced on the server, whatever the page
    assert outsider.get(path, headers={"Accept": "text/html"}).status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/console/offline-grants/{grant}/revoke/",
        "/console/users/{user}/offline-grants/revoke/",
        "/console/users/{user}/revoke-all/",
    ],
)
def test_a_person_who_is_not_staff_cannot_revoke_offline_access(
    outsider, person, mail, path: str
) -> None:
    sessions = live_sessions(person)
    token = csrf_token(outsider.get("/login").content)

    response = outsider.post(
        path.format(grant=mail.grant.pk, user=person.pk), {"csrfmiddlewaretoken": token}
    )

    assert response.status_code == 403
    still_live(mail)
    assert live_sessions(person) == sessions


def test_an_anonymous_post_revokes_nothing(client: HttpClient, mail) -> None:
    response = client.post(f"/console/offline-grants/{mail.grant.pk}/revoke/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=")
    still_live(mail)


def test_an_unknown_offline_grant_is_a_404(staff) -> None:
    assert staff.get(f"/console/offline-grants/{uuid.uuid4()}/revoke/").status_code == 404
    assert staff.get("/console/offline-grants/not-a-uuid/revoke/").status_code == 404
    assert staff.get(f"/console/users/{uuid.uuid4()}/offline-grants/revoke/").status_code == 404
    assert staff.get(f"/console/users/{uuid.uuid4()}/revoke-all/").status_code == 404


# --- revoking one ----------------------------------------------------------------------------


def test_the_confirmation_page_revokes_nothing(staff, operator, mail) -> None:
    response = staff.get(f"/console/offline-grants/{mail.grant.pk}/revoke/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Revoke the offline access of Mail app for ada@example.com?" in page
    assert f"Mail app ({mail.rp.client_id}) can no longer refresh its tokens" in page
    assert ">Revoke offline access</button>" in page
    still_live(mail)
    assert audited("offline_access.revoked", operator) == []


def test_a_post_without_the_csrf_token_is_refused(staff, mail) -> None:
    # OWASP ASVS 4.2.2: state-changing requests carry an anti-CSRF token
    response = staff.post(f"/console/offline-grants/{mail.grant.pk}/revoke/")

    assert response.status_code == 403
    still_live(mail)


def test_revoke_an_offline_grant(staff, operator, person, mail) -> None:
    still_live(mail)  # its access token works until the operator acts

    response = confirm(staff, f"/console/offline-grants/{mail.grant.pk}/revoke/")

    assert response.redirect_chain[-1][0] == f"/console/users/{person.pk}/"
    assert "Offline access of Mail app revoked." in response.content.decode()
    assert "No offline access." in offline_table(response.content)
    revoked_by(mail, "operator")
    refresh_refused(mail)
    access_refused(mail)
    [event] = audited("offline_access.revoked", operator)  # ASVS 7.2.2: who did it
    assert (event.user_id, event.resource_type) == (str(person.pk), "offline_grant")
    assert event.resource_id == str(mail.grant.pk)
    assert event.metadata == {"reason": "operator", "client_id": mail.rp.client_id}


def test_revoking_an_ended_offline_grant_says_so(staff, operator, mail) -> None:
    path = f"/console/offline-grants/{mail.grant.pk}/revoke/"
    confirm(staff, path)
    revoked_at = OfflineGrant.objects.get(pk=mail.grant.pk).revoked_at

    again = confirm(staff, path)

    assert "The offline access of Mail app had already ended." in again.content.decode()
    assert "Offline access of Mail app revoked." not in again.content.decode()
    assert OfflineGrant.objects.get(pk=mail.grant.pk).revoked_at == revoked_at
    assert len(audited("offline_access.revoked", operator)) == 1


# --- revoking all, or everything -------------------------------------------------------------


def test_revoke_all_offline_access_leaves_the_sessions(
    staff, operator, person, person_session
) -> None:
    grants = [offline_grant(person, name="Mail app"), offline_grant(person, name="Notes app")]
    sessions = live_sessions(person)
    path = f"/console/users/{person.pk}/offline-grants/revoke/"
    question = staff.get(path).content.decode()
    assert "Revoke every offline grant of ada@example.com?" in question
    assert "Their sessions are not affected." in question

    response = confirm(staff, path)

    assert "2 offline grants of ada@example.com revoked." in response.content.decode()
    assert "No offline access." in offline_table(response.content)
    assert live_sessions(person) == sessions
    assert person_session.pk in sessions
    for offline in grants:
        revoked_by(offline, "operator")
        refresh_refused(offline)
        access_refused(offline)
    revoked = {event.resource_id for event in audited("offline_access.revoked", operator)}
    assert revoked == {str(offline.grant.pk) for offline in grants}
    assert audited("session.revoked", operator) == []


def test_revoking_every_session_leaves_offline_access(staff, person, person_session, mail):
    # OIDC Core §11: offline access outlives the sign-in; ending sessions is not revoking it
    response = confirm(staff, f"/console/users/{person.pk}/sessions/revoke/")

    assert "2 live sessions of ada@example.com revoked." in response.content.decode()
    assert live_sessions(person) == set()
    assert "Mail app" in offline_table(response.content)
    still_live(mail)


def test_revoke_everything_ends_sessions_and_offline_grants(
    staff, operator, person, person_session, mail
) -> None:
    sessions = live_sessions(person)
    assert len(sessions) == 2  # the hosted-page sign-in, and the one the grant was given in
    path = f"/console/users/{person.pk}/revoke-all/"
    assert "Revoke everything ada@example.com holds?" in staff.get(path).content.decode()

    response = confirm(staff, path)

    page = response.content.decode()
    assert "2 live sessions and 1 offline grant of ada@example.com revoked." in page
    assert "No offline access." in offline_table(response.content)
    assert live_sessions(person) == set()
    revoked_by(mail, "operator")
    refresh_refused(mail)
    access_refused(mail)
    assert {e.session_id for e in audited("session.revoked", operator)} == {
        str(pk) for pk in sessions
    }
    [event] = audited("offline_access.revoked", operator)
    assert event.resource_id == str(mail.grant.pk)


# --- the admin API ---------------------------------------------------------------------------


def _call(http: HttpClient, method: str, path: str, **kwargs):
    return getattr(http, method)(path, **kwargs)


@pytest.mark.parametrize(("method", "path"), API_CALLS)
def test_api_anonymous_callers_are_challenged(client: HttpClient, method: str, path: str):
    # RFC 6750 §3: no credentials, 401 with a Bearer challenge
    response = _call(client, method, path.format(user=SOME_ID, grant=SOME_ID))

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer realm=")


@pytest.mark.parametrize(("method", "path"), API_CALLS)
def test_api_people_who_are_not_staff_are_refused(
    outsider, person, person_session, mail, method: str, path: str
) -> None:
    # OWASP ASVS 4.1.1; the CSRF token is sent, so the refusal is the permission's
    token = csrf_token(outsider.get("/login").content)
    sessions = live_sessions(person)

    response = _call(
        outsider,
        method,
        path.format(user=person.pk, grant=mail.grant.pk),
        headers={"X-CSRFToken": token},
    )

    assert response.status_code == 403
    assert "CSRF" not in response.json()["detail"]
    still_live(mail)
    assert live_sessions(person) == sessions


@pytest.mark.parametrize(("method", "path"), API_CHANGES)
def test_api_an_admin_token_of_someone_not_staff_changes_nothing(
    person, mail, method: str, path: str
) -> None:
    token = access_token(person, "openid admin")

    response = _call(
        HttpClient(),
        method,
        path.format(user=person.pk, grant=mail.grant.pk),
        headers=bearer(token),
    )

    assert response.status_code == 403
    still_live(mail)


@pytest.mark.parametrize(
    ("method", "path"),
    [*API_CALLS, ("get", "/api/v1/offline-grants/not-a-uuid")],
)
def test_api_unknown_ids_are_a_404(admin_token, method: str, path: str) -> None:
    unknown = str(uuid.uuid4())

    response = _call(
        HttpClient(),
        method,
        path.format(user=unknown, grant=unknown),
        headers=bearer(admin_token) | {"Accept": "application/json"},
    )

    assert response.status_code == 404
    assert response.json()  # says what was not found: {"detail": ...} or {"error": ...}


@pytest.mark.parametrize(("method", "path"), API_CHANGES)
def test_api_a_staff_session_post_needs_the_csrf_token(
    staff, person, person_session, mail, method: str, path: str
) -> None:
    # OWASP ASVS 4.2.2: a cookie-authenticated change carries the anti-CSRF token
    path = path.format(user=person.pk, grant=mail.grant.pk)
    sessions = live_sessions(person)

    refused = staff.post(path)

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    still_live(mail)
    assert live_sessions(person) == sessions
    token = csrf_token(staff.get(f"/console/offline-grants/{mail.grant.pk}/revoke/").content)
    assert staff.post(path, headers={"X-CSRFToken": token}).status_code == 200
    revoked_by(mail, "api")


def test_api_lists_the_offline_grants_in_force(admin_token, person) -> None:
    live = offline_grant(person, name="Mail app")
    revoked = offline_grant(person, name="Calendar app")
    offline_grant_revoke(grant=revoked.grant, reason="operator")
    expired = offline_grant(person, name="Notes app")
    OfflineGrant.objects.filter(pk=expired.grant.pk).update(expires_at=timezone.now())
    http = HttpClient()

    response = http.get(f"/api/v1/users/{person.pk}/offline-grants", headers=bearer(admin_token))

    assert response.status_code == 200
    [listed] = response.json()["results"]
    assert set(listed) == GRANT_FIELDS
    assert listed["id"] == str(live.grant.pk)
    assert (listed["user"], listed["user_email"]) == (str(person.pk), "ada@example.com")
    assert (listed["client_id"], listed["client_name"]) == (live.rp.client_id, "Mail app")
    assert listed["scopes"] == SCOPES
    assert listed["live"] is True
    assert listed["session"] == str(live.grant.session_id)
    assert (listed["revoked_at"], listed["revoke_reason"]) == (None, "")
    assert listed["created_at"] < listed["expires_at"]
    one = http.get(f"/api/v1/offline-grants/{live.grant.pk}", headers=bearer(admin_token))
    assert one.json() == listed
    # One grant is shown whatever its state; `live` says whether it is in force.
    ended = http.get(f"/api/v1/offline-grants/{revoked.grant.pk}", headers=bearer(admin_token))
    assert (ended.json()["live"], ended.json()["revoke_reason"]) == (False, "operator")
    assert ended.json()["revoked_at"] is not None
    past = http.get(f"/api/v1/offline-grants/{expired.grant.pk}", headers=bearer(admin_token))
    assert (past.json()["live"], past.json()["revoked_at"]) == (False, None)


def test_api_a_person_without_offline_grants_has_an_empty_list(admin_token, person) -> None:
    response = HttpClient().get(
        f"/api/v1/users/{person.pk}/offline-grants", headers=bearer(admin_token)
    )

    assert response.status_code == 200
    assert response.json() == {"results": []}


def test_api_revokes_one_offline_grant(admin_token, operator, person, mail) -> None:
    http = HttpClient(enforce_csrf_checks=True)  # no cookies: a script with a token
    path = f"/api/v1/offline-grants/{mail.grant.pk}/revoke"

    revoked = http.post(path, headers=bearer(admin_token))
    again = http.post(path, headers=bearer(admin_token))

    assert revoked.status_code == 200
    body = revoked.json()
    assert set(body) == GRANT_FIELDS
    assert (body["id"], body["live"], body["revoke_reason"]) == (str(mail.grant.pk), False, "api")
    assert body["revoked_at"] is not None
    revoked_by(mail, "api")
    refresh_refused(mail)
    access_refused(mail)
    assert again.status_code == 200  # already ended: no change, no second event
    assert again.json() == body
    [event] = audited("offline_access.revoked", operator)
    assert (event.user_id, event.resource_id) == (str(person.pk), str(mail.grant.pk))
    assert event.metadata["reason"] == "api"


def test_api_revokes_every_offline_grant_and_keeps_the_sessions(
    admin_token, operator, person, person_session
) -> None:
    grants = [offline_grant(person, name="Mail app"), offline_grant(person, name="Notes app")]
    sessions = live_sessions(person)
    path = f"/api/v1/users/{person.pk}/offline-grants/revoke"

    revoked = HttpClient().post(path, headers=bearer(admin_token))
    again = HttpClient().post(path, headers=bearer(admin_token))

    assert revoked.status_code == 200
    assert revoked.json() == {"revoked": 2}
    assert again.json() == {"revoked": 0}
    assert live_sessions(person) == sessions
    for offline in grants:
        revoked_by(offline, "api")
        refresh_refused(offline)
    assert len(audited("offline_access.revoked", operator)) == 2
    listed = HttpClient().get(
        f"/api/v1/users/{person.pk}/offline-grants", headers=bearer(admin_token)
    )
    assert listed.json() == {"results": []}


def test_api_revoke_all_ends_sessions_and_offline_grants(
    admin_token, operator, person, person_session, mail
) -> None:
    sessions = live_sessions(person)
    path = f"/api/v1/users/{person.pk}/revoke-all"

    revoked = HttpClient().post(path, headers=bearer(admin_token))
    again = HttpClient().post(path, headers=bearer(admin_token))

    assert revoked.status_code == 200
    assert revoked.json() == {"sessions_ended": 2, "offline_grants_revoked": 1}
    assert again.json() == {"sessions_ended": 0, "offline_grants_revoked": 0}
    assert live_sessions(person) == set()
    revoked_by(mail, "api")
    refresh_refused(mail)
    access_refused(mail)
    ended = {event.session_id for event in audited("session.revoked", operator)}
    assert ended == {str(pk) for pk in sessions}
    assert len(audited("offline_access.revoked", operator)) == 1


@pytest.mark.parametrize(
    "path", ["/api/v1/users/{user}/offline-grants", "/api/v1/offline-grants/{grant}"]
)
def test_api_reading_offline_grants_is_recorded(looking, operator, person, mail, path: str) -> None:
    # GDPR Art. 30, SOC 2 CC6.1: an operator shown a person's data is on record
    path = path.format(user=person.pk, grant=mail.grant.pk)

    with recorded() as events:
        assert looking.get(path).status_code == 200

    [event] = events
    assert (event.event_type, event.action) == ("operator.viewed_user", "viewed")
    assert (event.user_id, event.actor_id) == (str(person.pk), str(operator.pk))
    assert (event.resource_type, event.resource_id) == ("user", str(person.pk))
    assert event.metadata == {"path": path}
