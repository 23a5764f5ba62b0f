"""The consent page (apps/tokens/authorize.py check_consent): it says where the answer sends
the browser, and "Not you? Sign in as someone else" ends the login session as a sign-out does,
then leads through the sign-in page back into the same authorization request."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from urllib.parse import urlsplit

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from apps.accounts.services import user_create
from apps.sessions.models import LoginSession
from apps.tokens.authorize import LOGIN_MARK, redirect_origin
from tests.rp import PASSWORD
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import (
    AUTHORIZE,
    Flow,
    client_redirect,
    new_pkce,
    query_of,
    unverified_payload,
    userinfo,
)

pytestmark = pytest.mark.django_db
CONSENT = "/oauth/authorize/consent"


def request_blob(response) -> str:
    assert response.status_code == 200, response.content[:500]
    found = re.search(r'name="request" value="([^"]+)"', response.content.decode())
    assert found, "no consent form"
    return unescape(found.group(1))


@pytest.mark.parametrize(
    ("uri", "origin"),
    [
        ("https://rp.example.com/callback?x=1", "https://rp.example.com"),
        ("https://RP.example.com:8443/cb", "https://rp.example.com:8443"),
        ("http://127.0.0.1:9000/callback", "http://127.0.0.1:9000"),
        ("http://[::1]:9000/callback", "http://[::1]:9000"),
        ("com.example.app:/oauth2redirect?x=1", "com.example.app:/oauth2redirect"),
    ],
)
def test_redirect_origin_is_what_people_read_as_the_destination(uri, origin) -> None:
    assert redirect_origin(uri) == origin


def test_consent_page_shows_the_applications_redirect_origin(flow: Flow) -> None:
    response = flow.authorize(prompt="consent")

    page = response.content.decode()
    assert re.search(r'class="redirect-origin">https://rp\.example\.com<', page)
    assert "Not you? Sign in as someone else" in page


def test_switch_account_ends_the_session_and_resumes_the_request_for_the_other_person(
    flow: Flow, person
) -> None:
    tokens = flow.tokens()
    pkce = new_pkce()
    blob = request_blob(flow.authorize(pkce, prompt="consent", login_hint="ada@example.com"))

    response = flow.http.post(CONSENT, {"request": blob, "decision": "switch_account"})

    # the first person's login session is over, as after a sign-out: their tokens are refused
    assert not LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()
    assert userinfo(flow.http, tokens["access_token"]).status_code == 401
    assert flow.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    # the sign-in page, then the same authorization request (minus the old login hint)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == reverse("signin:login")
    next_url = query_of(response["Location"])["next"]
    assert next_url.startswith(AUTHORIZE + "?")
    resumed = query_of(next_url)
    assert resumed["client_id"] == flow.rp.client_id
    assert resumed["code_challenge"] == pkce.challenge
    assert (resumed["state"], resumed["prompt"]) == ("st-8c1f", "consent")
    assert "login_hint" not in resumed
    assert LOGIN_MARK in resumed  # prompt=consent/login is satisfied by the new sign-in

    grace = user_create(email="grace@example.com", name="Grace Hopper", password=PASSWORD)
    force_sign_in(flow.http, grace)
    consent_page = flow.http.get(next_url)
    assert "Signed in as grace@example.com" in consent_page.content.decode()
    answer = flow.http.post(CONSENT, {"request": request_blob(consent_page), "decision": "allow"})
    code = client_redirect(answer)["code"]
    issued = flow.exchange(code, pkce.verifier).json()
    assert unverified_payload(issued["id_token"])["sub"] == str(grace.pk)


def test_switch_account_needs_the_csrf_token(flow: Flow, person, rp) -> None:
    blob = request_blob(flow.authorize(prompt="consent"))
    browser = HttpClient(enforce_csrf_checks=True)
    force_sign_in(browser, person)

    response = browser.post(CONSENT, {"request": blob, "decision": "switch_account"})

    assert response.status_code == 403
    assert LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()


def test_switch_account_with_a_forged_request_signs_nobody_out(flow: Flow, person) -> None:
    response = flow.http.post(CONSENT, {"request": "forged", "decision": "switch_account"})

    assert response.status_code == 400
    assert "This approval page has expired" in response.content.decode()
    assert LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()


def test_no_switch_offered_when_the_application_asked_for_this_person(flow: Flow) -> None:
    # OIDC Core §3.1.2.1 id_token_hint: the application wants this very person
    hint = flow.tokens()["id_token"]

    page = flow.authorize(prompt="consent", id_token_hint=hint).content.decode()

    assert "Allow Example RP?" in page
    assert "Not you?" not in page


def test_switch_account_loads_front_channel_logouts_before_the_sign_in_page(
    sign_in: Callable[..., Flow], person
) -> None:
    # Front-Channel Logout 1.0 §4: the session's applications are told, as at any sign-out
    flow = sign_in(frontchannel_logout_uri="https://rp.example.com/frontchannel-logout")
    blob = request_blob(flow.authorize(prompt="consent"))

    response = flow.http.post(CONSENT, {"request": blob, "decision": "switch_account"})

    assert response.status_code == 200
    page = response.content.decode()
    assert '<iframe src="https://rp.example.com/frontchannel-logout?' in page
    assert "Taking you to sign in as someone else" in page
    delay, _, target = response["Refresh"].partition("; url=")
    assert delay.isdigit()
    assert urlsplit(target).path == reverse("signin:login")
    assert query_of(target)["next"].startswith(AUTHORIZE + "?")
    assert not LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()
