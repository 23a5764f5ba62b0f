"""Offline access (OIDC Core §11): when the scope is honoured, what it yields (an offline grant
that outlives the sign-in), how it ends, and what it leaves alone."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.models import User
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
from apps.sessions.services import session_end, session_mark_compromised
from apps.tokens.models import AccessToken, Client, OfflineGrant, RefreshToken
from apps.tokens.services import consent_grant, consent_revoke, user_access_revoke_all
from apps.tokens.validation import InvalidToken, validate_access_token
from tests.rp import PASSWORD, RegisteredClient
from tests.tokens.conftest import (
    INTROSPECT,
    Flow,
    client_redirect,
    form_post,
    new_pkce,
    unverified_payload,
    userinfo,
)

pytestmark = pytest.mark.django_db

OFFLINE = "openid email offline_access"


@pytest.fixture
def offline_flow(signed_in: HttpClient, register) -> Flow:
    """A third-party relying party registered for refresh, and a person signed in."""
    return Flow(signed_in, register(grant_types=["authorization_code", "refresh_token"]))


def offline_tokens(flow: Flow, scope: str = OFFLINE) -> dict[str, Any]:
    """Asks for offline_access with prompt=consent, allows it on the consent page, and
    exchanges the code."""
    pkce = new_pkce()
    page = flow.authorize(pkce, scope=scope, prompt="consent")
    assert page.status_code == 200, page.content[:300]
    blob = re.search(rb'name="request" value="([^"]+)"', page.content)
    assert blob, "no consent form"
    decision = {"request": unescape(blob.group(1).decode()), "decision": "allow"}
    code = client_redirect(flow.http.post("/oauth/authorize/consent", decision))["code"]
    response = flow.exchange(code, pkce.verifier)
    assert response.status_code == 200, response.content
    tokens: dict[str, Any] = response.json()
    return tokens


def the_session(person: User) -> LoginSession:
    return LoginSession.objects.get(user=person, ended_at__isnull=True)


def assert_dead(flow: Flow, tokens: dict[str, Any]) -> None:
    refused = flow.refresh(tokens["refresh_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert refused.json()["error_description"]
    with pytest.raises(InvalidToken):
        validate_access_token(tokens["access_token"])


# --- when it is honoured -------------------------------------------------------------------


def test_offline_access_with_prompt_consent_gives_an_offline_grant(
    offline_flow: Flow, person
) -> None:
    tokens = offline_tokens(offline_flow)

    assert tokens["scope"] == OFFLINE
    grant = OfflineGrant.objects.get(user=person)
    assert grant.client.client_id == offline_flow.rp.client_id
    assert grant.session == the_session(person)
    assert grant.scope == OFFLINE
    assert grant.expires_at - grant.created_at == timedelta(days=30)  # the documented default
    refresh = RefreshToken.objects.get(revoked__isnull=True)
    assert (refresh.offline, refresh.token_family) == (True, grant.pk)
    assert refresh.family_expires_at == grant.expires_at
    event = SecurityEvent.objects.get(event_type="offline_access.granted")
    assert (event.user_id, event.resource_id) == (str(person.pk), str(grant.pk))
    assert event.metadata == {"client_id": offline_flow.rp.client_id, "scope": OFFLINE}


def test_offline_access_without_prompt_consent_is_ignored(offline_flow: Flow, person) -> None:
    # §11: "the OP MUST ignore the offline_access request" unless consent is asked for
    consent_grant(user_id=person.pk, client=_client(offline_flow.rp), scopes=["openid", "email"])

    tokens = offline_flow.tokens(scope=OFFLINE)

    assert tokens["scope"] == "openid email"
    assert "refresh_token" in tokens  # bound to the sign-in, as without offline_access
    assert not OfflineGrant.objects.exists()
    assert not RefreshToken.objects.filter(offline=True).exists()


def test_offline_access_already_consented_needs_no_new_prompt(offline_flow: Flow, person) -> None:
    # §11: "or other conditions ... permitting offline access are in place": the person
    # allowed it this client before.
    offline_tokens(offline_flow)

    again = offline_flow.tokens(scope=OFFLINE)  # no prompt, no consent page

    assert again["scope"] == OFFLINE
    assert OfflineGrant.objects.filter(user=person).count() == 2


def test_offline_access_for_a_client_without_refresh_is_dropped(
    signed_in: HttpClient, register, person
) -> None:
    # §11 asks for a refresh token: a client that may not refresh cannot have it
    flow = Flow(signed_in, register(grant_types=["authorization_code"]))

    tokens = offline_tokens(flow)

    assert tokens["scope"] == "openid email"
    assert "refresh_token" not in tokens
    assert not OfflineGrant.objects.exists()


def test_the_consent_page_names_offline_access(offline_flow: Flow) -> None:
    page = offline_flow.authorize(scope=OFFLINE, prompt="consent")
    assert page.status_code == 200
    assert b"while you are signed out" in page.content


def test_discovery_advertises_offline_access(client: HttpClient) -> None:
    metadata = client.get("/.well-known/openid-configuration").json()
    assert "offline_access" in metadata["scopes_supported"]


# --- what it outlives ----------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["logout", "idle_timeout", "expired", "operator", "api"])
def test_the_offline_grant_outlives_the_end_of_its_login_session(
    offline_flow: Flow, person, reason: str
) -> None:
    tokens = offline_tokens(offline_flow)
    session = the_session(person)

    session_end(session=session, reason=reason)

    # its access tokens belong to the grant: the ended session's sid does not kill them
    assert validate_access_token(tokens["access_token"])["sub"] == str(person.pk)
    refreshed = offline_flow.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
    body = refreshed.json()
    assert body["scope"] == OFFLINE
    claims = validate_access_token(body["access_token"])
    assert claims["sid"] is None
    assert claims["did"] == session.device_id
    assert userinfo(offline_flow.http, body["access_token"]).status_code == 200
    assert OfflineGrant.objects.get().last_used_at > OfflineGrant.objects.get().created_at


def test_a_refresh_token_without_offline_access_dies_with_its_session(
    offline_flow: Flow, person
) -> None:
    tokens = offline_tokens(offline_flow, scope="openid email")
    session_end(session=the_session(person), reason="logout")

    refused = offline_flow.refresh(tokens["refresh_token"])

    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert "sign-in" in refused.json()["error_description"]


def test_a_rotated_offline_refresh_token_replayed_revokes_the_grant(
    offline_flow: Flow, person
) -> None:
    # RFC 9700 §4.14.2: still rotated with reuse detection
    tokens = offline_tokens(offline_flow)
    rotated = offline_flow.refresh(tokens["refresh_token"]).json()

    replay = offline_flow.refresh(tokens["refresh_token"])

    assert replay.json()["error"] == "invalid_grant"
    assert "already used" in replay.json()["error_description"]
    assert SecurityEvent.objects.filter(event_type="token.reuse_detected").count() == 1
    assert_dead(offline_flow, rotated)
    grant = OfflineGrant.objects.get()
    assert (grant.revoke_reason, grant.revoked_at is not None) == ("refresh_reuse", True)


def test_the_offline_grant_ends_at_its_absolute_lifetime(offline_flow: Flow, settings) -> None:
    tokens = offline_tokens(offline_flow)
    past = timezone.now() - timedelta(seconds=1)
    RefreshToken.objects.filter(offline=True).update(family_expires_at=past)
    OfflineGrant.objects.update(expires_at=past)

    refused = offline_flow.refresh(tokens["refresh_token"])

    assert refused.json()["error"] == "invalid_grant"
    assert "lifetime" in refused.json()["error_description"]


def test_the_offline_grant_ends_when_unused_past_its_idle_timeout(
    offline_flow: Flow, settings
) -> None:
    tokens = offline_tokens(offline_flow)
    idle = timedelta(seconds=settings.OFFLINE_ACCESS_IDLE_TIMEOUT + 1)
    RefreshToken.objects.filter(offline=True).update(created=timezone.now() - idle)

    refused = offline_flow.refresh(tokens["refresh_token"])

    assert refused.json()["error"] == "invalid_grant"
    assert "unused" in refused.json()["error_description"]


def test_introspection_of_an_offline_refresh_token(offline_flow: Flow, person, register) -> None:
    # RFC 7662 §2.2: active while the token endpoint would take it, after sign-out too
    tokens = offline_tokens(offline_flow)
    session_end(session=the_session(person), reason="logout")
    resource_server = register(grant_types=["client_credentials"], redirect_uris=[])

    answer = form_post(
        offline_flow.http, INTROSPECT, {"token": tokens["refresh_token"]}, auth=resource_server
    ).json()

    assert answer["active"] is True
    assert (answer["offline_access"], answer["sid"]) == (True, None)


# --- how it ends ---------------------------------------------------------------------------


def test_revoke_everything_ends_sessions_and_offline_grants(offline_flow: Flow, person) -> None:
    tokens = offline_tokens(offline_flow)

    revoked = user_access_revoke_all(user=person, reason="operator", actor_id=person.pk)

    assert (revoked.sessions_ended, revoked.offline_grants_revoked) == (1, 1)
    assert_dead(offline_flow, tokens)
    event = SecurityEvent.objects.get(event_type="offline_access.revoked")
    assert event.metadata == {"reason": "operator", "client_id": offline_flow.rp.client_id}
    assert not AccessToken.objects.exists()  # listed on the revocation list, rows gone


def test_deactivating_the_account_ends_its_offline_grants(offline_flow: Flow, person) -> None:
    tokens = offline_tokens(offline_flow)

    person.is_active = False
    person.save(update_fields=["is_active"])

    assert_dead(offline_flow, tokens)
    assert OfflineGrant.objects.get().revoke_reason == "account_disabled"


def test_deleting_the_account_puts_its_offline_access_tokens_on_the_revocation_list(
    offline_flow: Flow, person
) -> None:
    tokens = offline_tokens(offline_flow)
    session_end(session=the_session(person), reason="logout")  # no sid left to revoke by

    User.objects.get(pk=person.pk).delete()

    with pytest.raises(InvalidToken):
        validate_access_token(tokens["access_token"])


def test_a_password_change_ends_every_session_and_offline_grant(offline_flow: Flow, person) -> None:
    # OWASP ASVS 3.3.3: after a password change nothing opened with the old one survives
    tokens = offline_tokens(offline_flow)
    user = User.objects.get(pk=person.pk)

    user.set_password("a completely different passphrase")
    user.save()

    assert_dead(offline_flow, tokens)
    assert not LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()
    assert LoginSession.objects.get(user=person).end_reason == "password_changed"
    assert OfflineGrant.objects.get().revoke_reason == "password_changed"


def test_a_password_hash_upgrade_at_sign_in_is_not_a_password_change(
    offline_flow: Flow, person
) -> None:
    # Django rehashes an old hash at sign-in; the password is the same one.
    tokens = offline_tokens(offline_flow)
    User.objects.filter(pk=person.pk).update(
        password=make_password(PASSWORD, hasher="pbkdf2_sha256")
    )

    signed_in = HttpClient().post("/login", {"email": person.email, "password": PASSWORD})
    assert signed_in.status_code == 302
    assert User.objects.get(pk=person.pk).password.startswith("argon2")

    assert offline_flow.refresh(tokens["refresh_token"]).status_code == 200
    assert OfflineGrant.objects.get().revoked_at is None


def test_a_compromised_session_takes_the_offline_grants_given_in_it(
    offline_flow: Flow, person, register
) -> None:
    tokens = offline_tokens(offline_flow)
    other = Flow(offline_flow.http, register(grant_types=["authorization_code", "refresh_token"]))
    session = the_session(person)
    kept = offline_tokens(other)
    # as if given in another sign-in: that one stays
    OfflineGrant.objects.filter(client__client_id=other.rp.client_id).update(session=None)

    session_mark_compromised(session=session, actor_id=None)

    assert_dead(offline_flow, tokens)
    assert other.refresh(kept["refresh_token"]).status_code == 200


def test_withdrawing_consent_ends_the_clients_offline_grant(offline_flow: Flow, person) -> None:
    tokens = offline_tokens(offline_flow)

    consent_revoke(user_id=person.pk, client=_client(offline_flow.rp))

    assert_dead(offline_flow, tokens)
    assert OfflineGrant.objects.get().revoke_reason == "consent_revoked"


@pytest.mark.parametrize("how", ["operator", "rfc7009"])
def test_a_refresh_after_the_grant_was_revoked_is_refused_without_a_reuse_alarm(
    offline_flow: Flow, person, how: str
) -> None:
    # The client is only late to learn of the revocation: invalid_grant saying so, and no
    # token.reuse_detected (high severity), which is for a rotated token coming back.
    tokens = offline_tokens(offline_flow)
    if how == "operator":
        user_access_revoke_all(user=person, reason="operator")
    else:
        form_post(
            offline_flow.http, "/oauth/revoke", {"token": tokens["refresh_token"]},
            auth=offline_flow.rp,
        )  # fmt: skip

    refused = offline_flow.refresh(tokens["refresh_token"])

    assert refused.json()["error"] == "invalid_grant"
    assert refused.json()["error_description"] == "The refresh token was revoked; sign in again."
    assert not SecurityEvent.objects.filter(event_type="token.reuse_detected").exists()


def test_revoking_the_refresh_token_ends_the_offline_grant(offline_flow: Flow) -> None:
    # RFC 7009 §2.1
    tokens = offline_tokens(offline_flow)

    revoked = form_post(
        offline_flow.http, "/oauth/revoke", {"token": tokens["refresh_token"]}, auth=offline_flow.rp
    )

    assert revoked.status_code == 200
    assert OfflineGrant.objects.get().revoke_reason == "rfc7009"
    assert unverified_payload(tokens["access_token"])["sid"] is None
    with pytest.raises(InvalidToken):
        validate_access_token(tokens["access_token"])


def _client(rp: RegisteredClient) -> Client:
    return Client.objects.get(client_id=rp.client_id)
