"""Who an upstream identity is here (apps/federation/linking.py) and the pages around it:
never decided by e-mail alone; an existing account is linked only after its owner proves it
is theirs; the security page links and unlinks; the sign-in goes through the pipeline's own
steps (blocks, a second factor) and the tokens say how (amr fed, provider). Driven through
the test client, with the Google stand-in approving at once."""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.models import StaffRole, User
from apps.accounts.services import user_block, user_create
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.privacy import FederationData
from apps.federation.providers import provider_create
from apps.sessions.models import LoginSession
from apps.tokens.models import Client
from apps.tokens.services import consent_grant
from tests.accounts.factories import UserFactory
from tests.events import recorded
from tests.federation.standins import GoogleStandIn
from tests.rp import PASSWORD, TotpCodes, totp_enrolled
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import SCOPE, Flow, client_redirect, new_pkce, unverified_payload

pytestmark = pytest.mark.django_db

EMAIL = "pat@example.com"  # the stand-in's person


def _google(standin: GoogleStandIn, **fields: Any) -> Provider:
    admin = UserFactory(is_staff=True, staff_role=StaffRole.ADMINISTRATOR)
    return provider_create(
        actor_id=admin.pk,
        slug="google",
        name="Google",
        kind="google",
        issuer=standin.url,
        client_id=standin.client_id,
        client_secret=standin.client_secret,
        **fields,
    )


def _round_trip(http: HttpClient, standin: GoogleStandIn, next_url: str = "/account/") -> Any:
    start = http.get("/login/federated/google", {"next": next_url})
    assert start.status_code == 302, start.content
    return http.get("/login/federated/google/callback", standin.authorize(start["Location"]))


def _failed(events: list[Any]) -> list[str]:
    return [e.error_code for e in events if e.event_type == "federation.failed"]


def _linked(events: list[Any]) -> list[str]:
    return [e.metadata["method"] for e in events if e.event_type == "federation.linked"]


# --- an account holds the address ---------------------------------------------------------


def test_an_existing_account_is_linked_only_after_its_password(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    _google(google_standin, jit_provisioning=True)
    owner = user_create(email=EMAIL, password=PASSWORD, email_verified=True)

    with recorded() as events:
        response = _round_trip(client, google_standin)
    assert response["Location"] == "/login/federated/link"
    assert not FederatedIdentity.objects.exists()  # nothing linked by the address alone
    assert not LoginSession.objects.exists()  # and nobody signed in
    assert _linked(events) == []

    page = client.get("/login/federated/link").content.decode()
    assert EMAIL in page
    assert "Sign in to link" in page
    sign_in = client.post(
        "/login",
        {"email": EMAIL, "password": PASSWORD, "next": "/login/federated/link/confirm"},
    )
    assert sign_in["Location"] == "/login/federated/link/confirm"
    assert "Link Google" in client.get("/login/federated/link/confirm").content.decode()
    with recorded() as events:
        confirmed = client.post("/login/federated/link/confirm", {"decision": "link"})
    assert confirmed["Location"] == "/account/"
    identity = FederatedIdentity.objects.get()
    assert identity.user == owner
    assert identity.subject == google_standin.user["sub"]
    assert _linked(events) == ["proven"]

    # From now on the provider signs the person in, with no password.
    other_browser = HttpClient()
    response = _round_trip(other_browser, google_standin)
    assert response["Location"] == "/account/"
    session = LoginSession.objects.filter(provider="google").get()
    assert session.user == owner
    assert session.amr == ["fed"]


def test_whoever_controls_the_upstream_account_cannot_link_without_the_password(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    # Pre-account takeover and e-mail-based linking: the upstream says the address is
    # verified, but proving the account here takes its own sign-in.
    _google(google_standin)
    user_create(email=EMAIL, password=PASSWORD, email_verified=True)
    attacker = user_create(email="mallory@example.com", password=PASSWORD)
    assert _round_trip(client, google_standin)["Location"] == "/login/federated/link"

    # Not signed in: back to the page that asks for the sign-in.
    assert client.post("/login/federated/link/confirm")["Location"] == "/login/federated/link"
    # A wrong password for the account: nothing.
    wrong = client.post(
        "/login",
        {"email": EMAIL, "password": "not it", "next": "/login/federated/link/confirm"},
    )
    assert wrong.status_code == 400
    # Signed in to another account: refused, nothing linked.
    client.post(
        "/login",
        {
            "email": attacker.email,
            "password": PASSWORD,
            "next": "/login/federated/link/confirm",
        },
    )
    with recorded() as events:
        refused = client.post("/login/federated/link/confirm", {"decision": "link"})
    assert refused.status_code == 403
    assert "another account" in refused.content.decode()
    assert _failed(events) == ["wrong_account"]
    assert not FederatedIdentity.objects.exists()


def test_a_sign_in_older_than_the_upstream_one_does_not_prove_the_link(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    _google(google_standin)
    owner = user_create(email=EMAIL, password=PASSWORD, email_verified=True)
    session = force_sign_in(client, owner)
    LoginSession.objects.filter(pk=session.pk).update(
        authenticated_at=timezone.now() - datetime.timedelta(minutes=1)
    )
    assert _round_trip(client, google_standin)["Location"] == "/login/federated/link"
    with recorded() as events:
        response = client.post("/login/federated/link/confirm", {"decision": "link"})
    assert response.status_code == 403
    assert _failed(events) == ["not_proven"]
    assert not FederatedIdentity.objects.exists()


@pytest.mark.parametrize(("jit", "code"), [(False, "not_linked"), (True, "unverified_email")])
def test_an_unverified_upstream_address_never_links_nor_provisions(
    client: HttpClient, google_standin: GoogleStandIn, jit: bool, code: str
) -> None:
    _google(google_standin, jit_provisioning=jit)
    user_create(email=EMAIL, password=PASSWORD, email_verified=True)
    google_standin.user["email_verified"] = False
    with recorded() as events:
        response = _round_trip(client, google_standin)
    assert response.status_code == 403
    assert _failed(events) == [code]
    assert not FederatedIdentity.objects.exists()
    assert not LoginSession.objects.exists()
    assert User.objects.filter(email__iexact=EMAIL).count() == 1


def test_without_provisioning_an_unknown_person_is_told_what_to_do(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    _google(google_standin)
    with recorded() as events:
        response = _round_trip(client, google_standin)
    assert response.status_code == 403
    assert "link Google on your security page" in response.content.decode()
    assert _failed(events) == ["not_linked"]
    assert not User.objects.filter(email__iexact=EMAIL).exists()


def test_provisioning_makes_a_verified_account_without_a_password(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    _google(google_standin, jit_provisioning=True)
    with recorded() as events:
        response = _round_trip(client, google_standin)
    assert response["Location"] == "/account/"
    user = User.objects.get(email=EMAIL)
    assert user.email_verified
    assert not user.has_usable_password()
    assert user.name == "Pat Example"
    assert _linked(events) == ["provisioned"]
    [created] = [e for e in events if e.event_type == "user.created"]
    assert created.metadata["source"] == "federation"
    [succeeded] = [e for e in events if e.event_type == "login.succeeded"]
    assert succeeded.metadata["provider"] == "google"
    assert succeeded.metadata["amr"] == ["fed"]


# --- the sign-in pipeline's steps ---------------------------------------------------------


def _linked_person(provider: Provider, standin: GoogleStandIn, **fields: Any) -> User:
    user = user_create(email=EMAIL, email_verified=True, **fields)
    FederatedIdentity.objects.create(user=user, provider=provider, subject=standin.user["sub"])
    return user


def test_a_blocked_person_is_refused_though_the_provider_vouches(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    user = _linked_person(_google(google_standin), google_standin)
    user_block(user=user, actor_id=None, source="operator", reason="test")
    with recorded() as events:
        response = _round_trip(client, google_standin)
    assert response.status_code == 403
    assert not LoginSession.objects.exists()
    [failed] = [e for e in events if e.event_type == "login.failed"]
    assert failed.error_code == "blocked"
    assert failed.metadata["provider"] == "google"


def test_a_person_with_a_second_factor_proves_it_after_the_provider(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    # The upstream's own MFA is not taken on its word: ours is asked as after a password.
    user = _linked_person(_google(google_standin), google_standin)
    secret = totp_enrolled(user)
    response = _round_trip(client, google_standin)
    assert urlsplit(response["Location"]).path == "/login/second-factor"
    assert not LoginSession.objects.exists()
    proven = client.post("/login/second-factor", {"method": "totp", "code": TotpCodes(secret)()})
    assert proven.status_code == 302, proven.content
    session = LoginSession.objects.get(user=user)
    assert session.provider == "google"
    assert session.amr == ["fed", "otp"]


def test_the_relying_partys_tokens_say_fed_and_the_provider(
    client: HttpClient, google_standin: GoogleStandIn, rp: Any
) -> None:
    user = _linked_person(_google(google_standin), google_standin)
    consent_grant(
        user_id=user.pk, client=Client.objects.get(client_id=rp.client_id), scopes=SCOPE.split()
    )
    flow = Flow(client, rp)
    pkce = new_pkce()
    to_login = flow.authorize(pkce, idp_hint="google")
    to_provider = client.get(to_login["Location"])
    start = client.get(to_provider["Location"])
    back = client.get(
        "/login/federated/google/callback", google_standin.authorize(start["Location"])
    )
    assert urlsplit(back["Location"]).path == "/oauth/authorize"
    code = client_redirect(client.get(back["Location"]))["code"]
    tokens = flow.exchange(code, pkce.verifier).json()
    id_token = unverified_payload(tokens["id_token"])
    access = unverified_payload(tokens["access_token"])
    assert id_token["amr"] == ["fed"]
    assert access["amr"] == ["fed"]
    assert access["provider"] == "google"
    assert id_token["sub"] == str(user.pk)  # Tessera's subject, not the upstream's


# --- the security page --------------------------------------------------------------------


def test_a_signed_in_person_links_a_provider_from_the_security_page(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    _google(google_standin)
    user = user_create(email="ada@example.com", password=PASSWORD)
    force_sign_in(client, user)
    page = client.get("/account/security/").content.decode()
    assert "Linked accounts" in page
    assert "Link Google" in page
    start = client.post("/account/security/linked/google")
    assert start.status_code == 302
    with recorded() as events:
        back = client.get(
            "/login/federated/google/callback", google_standin.authorize(start["Location"])
        )
    assert back["Location"] == "/account/security/#linked"
    identity = FederatedIdentity.objects.get()
    assert identity.user == user  # whatever address the provider has: the person chose
    assert _linked(events) == ["security_page"]
    page = client.get("/account/security/").content.decode()
    assert EMAIL in page  # what the provider calls the account
    assert "Link Google" not in page  # linked already


def test_linking_needs_a_fresh_sign_in(client: HttpClient, google_standin: GoogleStandIn) -> None:
    # NIST SP 800-63B §6.1.2.1: binding another authenticator needs a fresh proof.
    _google(google_standin)
    user = user_create(email="ada@example.com", password=PASSWORD)
    session = force_sign_in(client, user)
    LoginSession.objects.filter(pk=session.pk).update(
        authenticated_at=timezone.now() - datetime.timedelta(hours=1)
    )
    response = client.post("/account/security/linked/google")
    assert urlsplit(response["Location"]).path == "/account/security/confirm"


def test_an_upstream_account_linked_to_someone_else_is_not_moved(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    provider = _google(google_standin)
    _linked_person(provider, google_standin)
    user = user_create(email="ada@example.com", password=PASSWORD)
    force_sign_in(client, user)
    start = client.post("/account/security/linked/google")
    with recorded() as events:
        back = client.get(
            "/login/federated/google/callback", google_standin.authorize(start["Location"])
        )
    assert back.status_code == 409
    assert _failed(events) == ["already_linked"]
    assert FederatedIdentity.objects.get().user.email == EMAIL


def test_unlink_when_a_password_remains(client: HttpClient, google_standin: GoogleStandIn) -> None:
    user = _linked_person(_google(google_standin), google_standin, password=PASSWORD)
    force_sign_in(client, user)
    identity = FederatedIdentity.objects.get()
    assert "Unlink" in client.get("/account/security/").content.decode()
    with recorded() as events:
        response = client.post(f"/account/security/linked/{identity.pk}/unlink")
    assert response["Location"] == "/account/security/#linked"
    assert not FederatedIdentity.objects.exists()
    assert [e.event_type for e in events if e.event_type.startswith("federation.")] == [
        "federation.unlinked"
    ]


def test_the_only_way_to_sign_in_is_not_unlinked(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    user = _linked_person(_google(google_standin), google_standin)  # no password
    force_sign_in(client, user)
    identity = FederatedIdentity.objects.get()
    response = client.post(f"/account/security/linked/{identity.pk}/unlink", follow=True)
    assert "only way to sign in" in response.content.decode()
    assert FederatedIdentity.objects.filter(pk=identity.pk).exists()


def test_another_persons_identity_cannot_be_unlinked(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    _linked_person(_google(google_standin), google_standin, password=PASSWORD)
    identity = FederatedIdentity.objects.get()
    force_sign_in(client, user_create(email="ada@example.com", password=PASSWORD))
    response = client.post(f"/account/security/linked/{identity.pk}/unlink", follow=True)
    assert "not found" in response.content.decode()
    assert FederatedIdentity.objects.filter(pk=identity.pk).exists()


def test_gdpr_export_lists_links_and_erasure_removes_them(
    google_standin: GoogleStandIn,
) -> None:
    user = _linked_person(_google(google_standin), google_standin)
    [exported] = list(FederationData().export(user)["linked_accounts"])
    assert exported["provider"] == "google"
    assert exported["subject"] == google_standin.user["sub"]
    FederationData().erase(user, pseudonym="anon:x", actor_id=None)
    assert not FederatedIdentity.objects.exists()


def test_start_passes_login_hint_on(client: HttpClient, google_standin: GoogleStandIn) -> None:
    _google(google_standin)
    start = client.get("/login/federated/google", {"login_hint": "pat@example.com"})
    assert parse_qs(urlsplit(start["Location"]).query)["login_hint"] == ["pat@example.com"]


def test_github_gets_the_login_hint_as_its_login_parameter(
    client: HttpClient, github_standin: Any
) -> None:
    admin = UserFactory(is_staff=True, staff_role=StaffRole.ADMINISTRATOR)
    provider_create(
        actor_id=admin.pk,
        slug="github",
        name="GitHub",
        kind="github",
        issuer=github_standin.url,
        client_id=github_standin.client_id,
        client_secret=github_standin.client_secret,
    )
    start = client.get("/login/federated/github", {"login_hint": "octocat"})
    query = parse_qs(urlsplit(start["Location"]).query)
    assert query["login"] == ["octocat"]
    assert "login_hint" not in query


def test_unlinking_ends_the_sessions_signed_in_through_it_but_the_persons_own(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    # Whoever got in with the upstream account keeps nothing once it is unlinked (an
    # upstream account taken over); the browser that unlinked it stays signed in.
    provider = _google(google_standin)
    user = _linked_person(provider, google_standin, password=PASSWORD)
    elsewhere = HttpClient()
    assert _round_trip(elsewhere, google_standin)["Location"] == "/account/"
    through_google = LoginSession.objects.get(user=user, provider="google")
    own = force_sign_in(client, user)
    identity = FederatedIdentity.objects.get()
    with recorded() as events:
        client.post(f"/account/security/linked/{identity.pk}/unlink")
    through_google.refresh_from_db()
    own.refresh_from_db()
    assert through_google.end_reason == "unlinked"
    assert own.ended_at is None
    wanted = {"session.revoked", "federation.unlinked"}
    assert [e.event_type for e in events if e.event_type in wanted] == [
        "session.revoked",
        "federation.unlinked",
    ]
    assert elsewhere.get("/account/").status_code == 302  # signed out there


def test_the_sign_in_page_says_it_is_for_a_link_and_offers_no_provider(
    client: HttpClient, google_standin: GoogleStandIn
) -> None:
    _google(google_standin)
    page = client.get("/login", {"next": "/login/federated/link/confirm"}).content.decode()
    assert "to link it to the account you just used" in page
    assert "Sign in with Google" not in page  # it would start the upstream sign-in again
    assert "Sign in with Google" in client.get("/login").content.decode()
