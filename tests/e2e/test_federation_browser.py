"""Federation end to end (issue 17): a second Tessera started by the suite
(tests/federation/upstream_tessera.py) is the generic OpenID Connect upstream of the suite's
Tessera (the live server). A person signs in through both in Chromium, then a relying party
(Authlib, as tests/rp.py) gets tokens from the first:
(a) a new person: an account made just in time for the address the upstream verified;
(b) an address that has an account here: linked only after its own password, never by the
    address alone (pre-account takeover);
(c) the relying party's ID token and access token say amr `fed` and `provider`, and its
    userinfo answers;
and `idp_hint` on the authorization request goes straight to the upstream (Keycloak's
kc_idp_hint). Screenshots of each page are kept in the artifacts; the relying party's
redirect is intercepted (page.route), never loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.core import journal
from apps.core.models import SecurityEvent
from apps.federation.models import FederatedIdentity, Provider, ProviderKind
from apps.federation.providers import provider_create, provider_set_enabled
from apps.sessions.models import LoginSession
from tests.e2e.browser_steps import shot
from tests.federation.upstream_tessera import DEFAULT_SLUG, UpstreamPerson, UpstreamTessera
from tests.rp import PASSWORD, REDIRECT_URI, Browser, new_verifier

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_upstream_tessera_signs_its_person_in_for_the_suites_callback(
    upstream_tessera: UpstreamTessera,
) -> None:
    """The fixture itself, driven without the suite's Tessera: discovery, the registered
    client's code flow (PKCE, nonce) with Authlib, and a person made with createuser whose
    verified address the ID token vouches for."""
    upstream = upstream_tessera
    metadata = requests.get(f"{upstream.issuer}/.well-known/openid-configuration", timeout=10)
    assert metadata.status_code == 200
    discovered = metadata.json()
    assert discovered["issuer"] == upstream.issuer  # OIDC Discovery 1.0 §4.3
    person = upstream.create_person("grace@upstream.example", "Grace Hopper")

    client = OAuth2Session(
        upstream.client_id, upstream.client_secret, redirect_uri=upstream.client.redirect_uri,
        code_challenge_method="S256", scope="openid email profile",
    )  # fmt: skip
    verifier, nonce = new_verifier(), new_verifier()
    url, state = client.create_authorization_url(
        discovered["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    pages = Browser(upstream.issuer)
    try:
        response = pages.visit(url, email=person.email, password=person.password)
    finally:
        pages.http.close()

    assert response.is_redirect, f"{response.status_code} {response.url}\n{response.text[:1500]}"
    location = response.headers["Location"]
    assert location.startswith(upstream.client.redirect_uri + "?")
    assert pages.filled == ["password", "consent"]  # a third party's client: consent asked
    answer = parse_qs(urlsplit(location).query)
    assert answer["state"] == [state]
    assert answer["iss"] == [upstream.issuer]  # RFC 9207
    token = client.fetch_token(
        discovered["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    keys = KeySet.import_key_set(requests.get(discovered["jwks_uri"], timeout=10).json())
    claims = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
    assert (claims["iss"], claims["aud"], claims["nonce"]) == (
        upstream.issuer,
        upstream.client_id,
        nonce,
    )
    assert (claims["sub"], claims["email"], claims["email_verified"]) == (
        person.id,
        person.email,
        True,
    )
    client.close()


# --- the federation in Chromium --------------------------------------------------------------

PROVIDER_NAME = "Upstream Tessera"
RP_ORIGIN = "https://rp.example.com"


@pytest.fixture
def provider(upstream_tessera: UpstreamTessera) -> Iterator[Provider]:
    """The second Tessera as a generic OIDC provider of the suite's, made as the console
    makes one (apps.federation.providers), with just-in-time provisioning."""
    created = provider_create(
        actor_id=None, slug=DEFAULT_SLUG, name=PROVIDER_NAME, kind=ProviderKind.OIDC,
        issuer=upstream_tessera.issuer, client_id=upstream_tessera.client_id,
        client_secret=upstream_tessera.client_secret, jit_provisioning=True,
    )  # fmt: skip
    yield created
    # Every process's list of enabled providers is dropped with it (the cache "federation"),
    # not left to its 30 s age after the test's rows are flushed.
    provider_set_enabled(provider=created, enabled=False, actor_id=None)


@dataclass
class RelyingParty:
    """The relying party's side: Authlib, its authorization request and its back channel."""

    live_server: Any
    client: OAuth2Session
    verifier: str = field(default_factory=new_verifier)
    nonce: str = field(default_factory=new_verifier)
    state: str = ""

    def authorization_url(self, **params: str) -> str:
        self.verifier, self.nonce = new_verifier(), new_verifier()
        url, self.state = self.client.create_authorization_url(
            f"{self.live_server.url}/oauth/authorize",
            code_verifier=self.verifier,
            nonce=self.nonce,
            **params,
        )
        return str(url)

    def tokens(self, location: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The code for tokens; (token response, ID token claims, access token claims), both
        verified against the first Tessera's JWKS (OIDC Core §3.1.3.7, RFC 9068 §4)."""
        answer = parse_qs(urlsplit(location).query)
        assert answer["state"] == [self.state]
        assert answer["iss"] == [self.live_server.url]  # RFC 9207
        token = self.client.fetch_token(
            f"{self.live_server.url}/oauth/token",
            authorization_response=location,
            code_verifier=self.verifier,
        )
        metadata = requests.get(
            f"{self.live_server.url}/.well-known/openid-configuration", timeout=10
        ).json()
        keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
        id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
        assert (id_token["iss"], id_token["aud"], id_token["nonce"]) == (
            self.live_server.url,
            self.client.client_id,
            self.nonce,
        )
        access = jwt.decode(token["access_token"], keys, algorithms=["ES256"])
        assert access.header["typ"] == "at+jwt"
        return token, id_token, access.claims


@pytest.fixture
def relying_party(live_server, rp) -> Iterator[RelyingParty]:
    client = OAuth2Session(
        rp.client_id, rp.client_secret, redirect_uri=REDIRECT_URI,
        code_challenge_method="S256", scope="openid profile email",
    )  # fmt: skip
    yield RelyingParty(live_server, client)
    client.close()


@dataclass
class Journey:
    """One browser's pages: each document it was shown (URL, status), console errors."""

    page: Any
    artifacts: Path
    documents: list[tuple[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def shot(self, name: str) -> None:
        shot(self.page, self.artifacts, f"federation-{name}.png")

    def shown(self, origin: str, path: str) -> list[str]:
        """The URLs of `origin` at `path` that answered with a page (not a redirect)."""
        return [
            url
            for url, status in self.documents
            if url.startswith(origin) and urlsplit(url).path == path and status < 300
        ]


def _journey(page, artifacts: Path) -> Journey:
    journey = Journey(page, artifacts)
    # The relying party's redirect: recorded, answered here, never loaded.
    page.route(
        f"{RP_ORIGIN}/**",
        lambda route: route.fulfill(status=200, content_type="text/plain", body="RP"),
    )
    page.on(
        "response",
        lambda r: (
            journey.documents.append((r.url, r.status))
            if r.request.resource_type == "document"
            else None
        ),
    )
    page.on(
        "console",
        lambda message: journey.errors.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: journey.errors.append(f"pageerror: {error}"))
    return journey


def _away_from(prefix: str) -> Callable[[str], bool]:
    return lambda url: not url.startswith(prefix)


def _at_upstream(
    journey: Journey, upstream: UpstreamTessera, person: UpstreamPerson, name: str
) -> bool:
    """On the upstream's sign-in page: the person signs in there, allows the suite's Tessera
    on its consent page when asked, and is sent back to the suite's callback. Whether the
    upstream asked for consent (its client is a third party's; a person's consent is kept)."""
    page = journey.page
    page.wait_for_url(lambda url: url.startswith(f"{upstream.issuer}/login"))
    assert page.inner_text("h1") == "Sign in"
    journey.shot(f"upstream-login-{name}")
    page.fill("#id_email", person.email)
    page.fill("#id_password", person.password)
    page.click("form:not([data-webauthn]) button[type=submit]")
    page.wait_for_url(_away_from(f"{upstream.issuer}/login"))
    asked = page.url.startswith(upstream.issuer)
    if asked:
        page.locator("button[name=decision][value=allow]").wait_for()
        journey.shot(f"upstream-consent-{name}")
        page.click("button[name=decision][value=allow]")
        page.wait_for_url(_away_from(upstream.issuer))
    return asked


def _back_to_rp(journey: Journey, live_server, name: str) -> str:
    """At the suite's Tessera after the upstream: its consent page for the relying party
    when asked, then the relying party's redirect; its URL."""
    page = journey.page
    page.wait_for_url(
        lambda url: url.startswith(RP_ORIGIN) or url.startswith(f"{live_server.url}/oauth/")
    )
    if not page.url.startswith(RP_ORIGIN):
        page.locator("button[name=decision][value=allow]").wait_for()
        journey.shot(f"consent-{name}")
        page.click("button[name=decision][value=allow]")
        page.wait_for_url(lambda url: url.startswith(RP_ORIGIN))
    return str(page.url)


def _signed_in_through_upstream(
    relying_party: RelyingParty, location: str, *, person: User, subject: str
) -> None:
    """(c): the relying party's tokens from the suite's Tessera say the upstream vouched."""
    _token, id_token, access = relying_party.tokens(location)
    assert id_token["sub"] == access["sub"] == str(person.pk)
    assert "fed" in id_token["amr"], id_token["amr"]
    assert "fed" in access["amr"], access["amr"]
    assert access["provider"] == DEFAULT_SLUG
    session = LoginSession.objects.get(pk=access["sid"])
    assert (session.user_id, session.provider) == (person.pk, DEFAULT_SLUG)
    info = relying_party.client.get(f"{relying_party.live_server.url}/oauth/userinfo")
    assert info.status_code == 200, info.text
    assert info.json() == {
        "sub": str(person.pk), "email": person.email, "email_verified": True,
        "name": person.name,
    }  # fmt: skip
    identity = FederatedIdentity.objects.get(user=person)
    assert (identity.provider.slug, identity.subject) == (DEFAULT_SLUG, subject)


def test_a_new_person_signs_in_through_the_upstream_and_the_rp_gets_tokens(
    live_server, upstream_tessera, provider, relying_party, page, artifacts
) -> None:
    """(a) just-in-time provisioning, (c) tokens: the login page's provider button, the
    upstream's own sign-in and consent, an account made here for the verified address."""
    person = upstream_tessera.create_person("jit@upstream.example", "Jit Person")
    journey = _journey(page, artifacts)

    page.goto(relying_party.authorization_url())
    page.wait_for_url(lambda url: urlsplit(url).path == "/login")
    button = page.locator(f"a[data-provider={DEFAULT_SLUG}]")
    assert button.inner_text() == f"Sign in with {PROVIDER_NAME}"
    journey.shot("login-with-provider")
    button.click()
    assert _at_upstream(journey, upstream_tessera, person, "jit")
    location = _back_to_rp(journey, live_server, "jit")

    created = User.objects.get(email=person.email)
    assert created.email_verified
    assert not created.has_usable_password()  # it signs in through the upstream
    _signed_in_through_upstream(relying_party, location, person=created, subject=person.id)
    assert journey.errors == []


def test_an_existing_account_is_linked_only_after_its_password_then_idp_hint_goes_straight_up(
    live_server, upstream_tessera, provider, relying_party, browser, artifacts
) -> None:
    """(b) an account here holds the address the upstream verified: the link page asks for
    that account's password first, then links; then `idp_hint=upstream` on a new
    authorization request skips our sign-in page, and (c) the tokens say `fed`."""
    existing = user_create(
        email="linda@example.com", name="Linda Link", password=PASSWORD, email_verified=True
    )
    person = upstream_tessera.create_person("linda@example.com", "Linda Upstream")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    journey = _journey(page, artifacts)

    page.goto(relying_party.authorization_url())
    page.click(f"a[data-provider={DEFAULT_SLUG}]")
    assert _at_upstream(journey, upstream_tessera, person, "link")
    page.wait_for_url(f"{live_server.url}/login/federated/link")
    assert page.inner_text("h1") == f"Link your {PROVIDER_NAME} account"
    assert existing.email in page.inner_text("main")
    # Nothing linked, nobody signed in, by the address alone (pre-account takeover).
    assert not FederatedIdentity.objects.exists()
    assert not LoginSession.objects.filter(user=existing).exists()
    journey.shot("link")
    page.click("a:text-is('Sign in to link')")

    page.wait_for_url(lambda url: urlsplit(url).path == "/login")
    assert page.input_value("#id_email") == existing.email  # login_hint
    journey.shot("link-sign-in")
    page.fill("#id_password", PASSWORD)
    page.click("form:not([data-webauthn]) button[type=submit]")
    page.wait_for_url(f"{live_server.url}/login/federated/link/confirm")
    assert not FederatedIdentity.objects.exists()  # proven, not yet confirmed
    journey.shot("link-confirm")
    page.click("button[name=decision][value=link]")
    location = _back_to_rp(journey, live_server, "link")
    identity = FederatedIdentity.objects.get()
    assert (identity.user_id, identity.subject) == (existing.pk, person.id)
    _token, id_token, access = relying_party.tokens(location)
    assert id_token["amr"] == ["pwd"]  # this sign-in was the account's own password
    assert access["provider"] == "local"
    assert journey.errors == []
    context.close()

    # Another browser: idp_hint names the provider; our sign-in page is never shown.
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(15_000)
    journey = _journey(page, artifacts)
    page.goto(relying_party.authorization_url(idp_hint=DEFAULT_SLUG))
    # The upstream keeps the person's consent for its client: its sign-in page alone now.
    assert not _at_upstream(journey, upstream_tessera, person, "idp-hint")
    location = _back_to_rp(journey, live_server, "idp-hint")
    assert journey.shown(live_server.url, "/login") == []
    _signed_in_through_upstream(relying_party, location, person=existing, subject=person.id)
    assert journey.errors == []
    page.context.close()


# --- refusals through the real upstream: a page that says what to do, an event, no session ---


def _refused(journey: Journey, live_server, name: str, message: str) -> None:
    """The suite's refusal page for the callback: its status, its words, a way back."""
    page = journey.page
    page.wait_for_url(lambda url: url.startswith(f"{live_server.url}/login/federated/"))
    page.locator("h1:text-is('Sign-in not completed')").wait_for()
    assert message in page.inner_text("[role=alert]")
    assert page.get_attribute("a:text-is('Back to sign in')", "href").startswith("/login")
    [(url, status)] = [
        (url, status)
        for url, status in journey.documents
        if urlsplit(url).path.endswith("/callback")
    ][-1:]
    assert 400 <= status < 500, (url, status)
    journey.shot(f"refused-{name}")
    # Chromium logs the page's own status; nothing else went wrong on it.
    loaded = f"Failed to load resource: the server responded with a status of {status}"
    journey.errors[:] = [error for error in journey.errors if not error.startswith(loaded)]


def _failed_events(error_code: str) -> list[SecurityEvent]:
    journal.drain_now()  # the live server's events recorded outside a transaction
    return list(SecurityEvent.objects.filter(event_type="federation.failed", error_code=error_code))


def test_consent_denied_at_the_upstream_is_a_page_and_an_event_not_a_session(
    live_server, upstream_tessera, provider, relying_party, page, artifacts
) -> None:
    person = upstream_tessera.create_person("denies@upstream.example", "Denise Deny")
    journey = _journey(page, artifacts)

    page.goto(relying_party.authorization_url())
    page.click(f"a[data-provider={DEFAULT_SLUG}]")
    page.wait_for_url(lambda url: url.startswith(f"{upstream_tessera.issuer}/login"))
    page.fill("#id_email", person.email)
    page.fill("#id_password", person.password)
    page.click("form:not([data-webauthn]) button[type=submit]")
    page.click("button[name=decision][value=deny]")  # at the upstream: RFC 6749 §4.1.2.1

    _refused(journey, live_server, "denied", f"You did not allow the sign-in at {PROVIDER_NAME}.")
    assert not User.objects.filter(email=person.email).exists()
    assert not LoginSession.objects.exists()
    [event] = _failed_events("upstream_error")
    assert event.metadata["detail"] == "access_denied"
    assert journey.errors == []


def test_an_unverified_upstream_address_neither_links_nor_makes_an_account(
    live_server, upstream_tessera, provider, relying_party, page, artifacts
) -> None:
    """The upstream vouches for an address it has not verified (email_verified false): the
    account here that holds it is neither linked nor signed in to, and no other is made."""
    existing = user_create(
        email="victim@example.com", name="Vic Tim", password=PASSWORD, email_verified=True
    )
    person = upstream_tessera.create_person("victim@example.com", "Not Vic", email_verified=False)
    journey = _journey(page, artifacts)

    page.goto(relying_party.authorization_url())
    page.click(f"a[data-provider={DEFAULT_SLUG}]")
    assert _at_upstream(journey, upstream_tessera, person, "unverified")

    _refused(
        journey, live_server, "unverified",
        f"{PROVIDER_NAME} has not confirmed an e-mail address for this account",
    )  # fmt: skip
    assert not FederatedIdentity.objects.exists()
    assert not LoginSession.objects.exists()
    assert list(User.objects.all()) == [existing]
    assert [e.metadata["provider"] for e in _failed_events("unverified_email")] == [DEFAULT_SLUG]
    assert journey.errors == []


def test_a_callback_taken_to_another_browser_is_refused_and_cannot_be_used_again(
    live_server, upstream_tessera, provider, relying_party, browser, artifacts
) -> None:
    """The upstream's answer is stolen on its way back (the callback URL with its code and
    state, opened in the attacker's browser): refused there, since the state is bound to the
    browser that began the sign-in, and — taken once — then refused in the person's own."""
    person = upstream_tessera.create_person("stolen@upstream.example", "Stan Stolen")
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(2)]
    victim, attacker = (_journey(context.new_page(), artifacts) for context in contexts)
    stolen: list[str] = []

    def steal(route) -> None:
        """The upstream's redirect after consent, read and not followed: this browser shows
        a stand-in (a route sees no redirect's target, so the answer is taken here)."""
        answer = route.fetch(max_redirects=0)
        stolen.append(urljoin(route.request.url, answer.headers["location"]))
        route.fulfill(status=200, content_type="text/plain", body="intercepted")

    consent = f"{upstream_tessera.issuer}/oauth/authorize/consent"
    victim.page.route(consent, steal)
    victim.page.goto(relying_party.authorization_url())
    victim.page.click(f"a[data-provider={DEFAULT_SLUG}]")
    victim.page.wait_for_url(lambda url: url.startswith(f"{upstream_tessera.issuer}/login"))
    victim.page.fill("#id_email", person.email)
    victim.page.fill("#id_password", person.password)
    victim.page.click("form:not([data-webauthn]) button[type=submit]")
    victim.page.click("button[name=decision][value=allow]")
    victim.page.wait_for_url(consent)
    [callback] = stolen
    assert callback.startswith(f"{live_server.url}/login/federated/{DEFAULT_SLUG}/callback?")
    assert "code=" in callback

    attacker.page.goto(callback)
    _refused(
        attacker, live_server, "another-browser", "This sign-in was started in another browser."
    )
    victim.page.goto(callback)
    _refused(victim, live_server, "replayed", "This sign-in has expired or was used already.")

    assert not User.objects.filter(email=person.email).exists()
    assert not LoginSession.objects.exists()
    assert len(_failed_events("browser")) == 1
    assert len(_failed_events("state")) == 1
    for context in contexts:
        context.close()
