"""The end-session endpoint (apps/tokens/views.py end_session): OpenID Connect RP-Initiated
Logout 1.0, and what logout does to the tokens of the session (oidcc-rp-initiated-logout)."""

from __future__ import annotations

import re

import pytest
from django.test import Client as HttpClient

from apps.sessions.models import LoginSession
from tests.rp import POST_LOGOUT_URI, REDIRECT_URI
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import (
    LOGOUT,
    Flow,
    client_redirect,
    forged_id_token_hints,
    userinfo,
)

pytestmark = pytest.mark.django_db


def session_alive(person) -> bool:
    return LoginSession.objects.filter(user=person, ended_at__isnull=True).exists()


def still_signed_in(flow: Flow) -> bool:
    """The browser session still authorizes silently (OIDC Core §3.1.2.1 prompt=none)."""
    return "code" in client_redirect(flow.authorize(prompt="none"))


def assert_refused_page(response) -> None:
    """RP-Initiated Logout 1.0 §2, §3: an error page, never a redirect to an unverified URI."""
    assert response.status_code == 400
    assert "Location" not in response
    assert response["Content-Type"].startswith("text/html")


def test_valid_hint_and_registered_uri_signs_out_and_redirects_with_state(
    flow: Flow, person
) -> None:
    # RP-Initiated Logout 1.0 §2 (state), §3 (post_logout_redirect_uri); oidcc-rp-initiated-logout
    hint = flow.tokens()["id_token"]
    response = flow.http.get(
        LOGOUT,
        {"id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT_URI, "state": "bye-7"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"{POST_LOGOUT_URI}?state=bye-7"
    assert not session_alive(person)
    silent = flow.authorize(prompt="none")
    assert client_redirect(silent)["error"] == "login_required"


def test_logout_by_post_is_supported(flow: Flow, person) -> None:
    # RP-Initiated Logout 1.0 §2: the OP MUST support GET and POST
    hint = flow.tokens()["id_token"]
    response = flow.http.post(
        LOGOUT, {"id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT_URI}
    )
    assert response.status_code == 302
    assert response["Location"] == POST_LOGOUT_URI
    assert not session_alive(person)


def test_logout_ends_the_tokens_of_the_session(flow: Flow) -> None:
    # RP-Initiated Logout 1.0 §2 ends the OP session; its tokens die with it
    tokens = flow.tokens()
    assert userinfo(flow.http, tokens["access_token"]).status_code == 200
    response = flow.http.get(
        LOGOUT, {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI}
    )
    assert response.status_code == 302

    rejected = userinfo(flow.http, tokens["access_token"])
    assert rejected.status_code == 401
    assert 'error="invalid_token"' in rejected["WWW-Authenticate"]
    refreshed = flow.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


def test_forged_id_token_hint_is_refused_and_keeps_the_session(flow: Flow, person) -> None:
    # RP-Initiated Logout 1.0 §2 (the OP validates the hint); RFC 8725 §2.1, §3.1
    sid = str(LoginSession.objects.get(user=person).pk)
    for name, hint in forged_id_token_hints(person.pk, flow.rp.client_id, sid=sid):
        response = flow.http.get(
            LOGOUT,
            {"id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT_URI, "state": "s"},
        )
        assert_refused_page(response)
        assert session_alive(person), name
    assert still_signed_in(flow)


def test_access_token_as_hint_is_refused(flow: Flow, person) -> None:
    # RFC 8725 §3.11: an at+jwt is not an ID token
    tokens = flow.tokens()
    response = flow.http.get(
        LOGOUT,
        {"id_token_hint": tokens["access_token"], "post_logout_redirect_uri": POST_LOGOUT_URI},
    )
    assert_refused_page(response)
    assert session_alive(person)


@pytest.mark.parametrize(
    "uri",
    [
        POST_LOGOUT_URI + "/extra",
        POST_LOGOUT_URI + "?next=x",
        POST_LOGOUT_URI + "/",
        "https://rp.example.com:8443/signed-out",
        "http://rp.example.com/signed-out",
        "https://evil.example/signed-out",
        REDIRECT_URI,  # registered, but as a login redirect URI only
    ],
)
def test_post_logout_redirect_uri_not_registered_exactly_is_refused(
    flow: Flow, person, uri: str
) -> None:
    # RP-Initiated Logout 1.0 §3: exact match of a registered post_logout_redirect_uri
    hint = flow.tokens()["id_token"]
    response = flow.http.get(LOGOUT, {"id_token_hint": hint, "post_logout_redirect_uri": uri})
    assert_refused_page(response)
    assert session_alive(person)


def test_post_logout_redirect_uri_without_a_client_is_refused(flow: Flow, person) -> None:
    # RP-Initiated Logout 1.0 §3: without id_token_hint or client_id the URI cannot be checked
    response = flow.http.get(LOGOUT, {"post_logout_redirect_uri": POST_LOGOUT_URI})
    assert_refused_page(response)
    assert session_alive(person)


def test_client_id_that_contradicts_the_hint_is_refused(flow: Flow, person, register) -> None:
    # RP-Initiated Logout 1.0 §2: client_id must match the hint's aud
    hint = flow.tokens()["id_token"]
    other = register(post_logout_redirect_uris=[POST_LOGOUT_URI])
    response = flow.http.get(
        LOGOUT,
        {"id_token_hint": hint, "client_id": other.client_id,
         "post_logout_redirect_uri": POST_LOGOUT_URI},
    )  # fmt: skip
    assert_refused_page(response)
    assert session_alive(person)


def _csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "the form has no CSRF token"
    return match.group(1)


@pytest.fixture
def csrf_browser(person) -> HttpClient:
    """A signed-in browser whose POSTs are CSRF-checked, as a real browser's are."""
    browser = HttpClient(enforce_csrf_checks=True)
    force_sign_in(browser, person)
    return browser


def test_logout_without_hint_asks_before_signing_out(csrf_browser: HttpClient, person) -> None:
    # RP-Initiated Logout 1.0 §2: without a hint the OP SHOULD ask the End-User
    page = csrf_browser.get(LOGOUT)
    assert page.status_code == 200
    assert "tokens/logout_confirm.html" in [t.name for t in page.templates]
    assert session_alive(person)

    blob = page.context["request_blob"]
    forged = csrf_browser.post(LOGOUT + "/confirm", {"request": blob, "decision": "logout"})
    assert forged.status_code == 403  # a cross-site POST has no CSRF token
    assert session_alive(person)

    confirmed = csrf_browser.post(
        LOGOUT + "/confirm",
        {"request": blob, "decision": "logout",
         "csrfmiddlewaretoken": _csrf_token(page.content.decode())},
    )  # fmt: skip
    assert confirmed.status_code == 200
    assert "tokens/signed_out.html" in [t.name for t in confirmed.templates]
    assert not session_alive(person)


def test_logout_confirmation_can_be_declined(csrf_browser: HttpClient, person) -> None:
    # RP-Initiated Logout 1.0 §2: the End-User may decline
    page = csrf_browser.get(LOGOUT)
    response = csrf_browser.post(
        LOGOUT + "/confirm",
        {"request": page.context["request_blob"], "decision": "stay",
         "csrfmiddlewaretoken": _csrf_token(page.content.decode())},
    )  # fmt: skip
    assert response.status_code == 200
    assert session_alive(person)


def test_confirmed_logout_with_client_id_redirects_to_the_registered_uri(
    csrf_browser: HttpClient, person, rp
) -> None:
    # RP-Initiated Logout 1.0 §2 client_id, §3 redirect after logout with state
    page = csrf_browser.get(
        LOGOUT,
        {"client_id": rp.client_id, "post_logout_redirect_uri": POST_LOGOUT_URI, "state": "x1"},
    )
    assert page.status_code == 200
    response = csrf_browser.post(
        LOGOUT + "/confirm",
        {"request": page.context["request_blob"], "decision": "logout",
         "csrfmiddlewaretoken": _csrf_token(page.content.decode())},
    )  # fmt: skip
    assert response.status_code == 302
    assert response["Location"] == f"{POST_LOGOUT_URI}?state=x1"
    assert not session_alive(person)


def test_hint_of_an_older_session_asks_before_signing_out(flow: Flow, person) -> None:
    # RP-Initiated Logout 1.0 §2: a hint for another session is no proof for this one
    hint = flow.tokens()["id_token"]
    force_sign_in(flow.http, person)  # a new login session in the same browser
    response = flow.http.get(
        LOGOUT, {"id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT_URI}
    )
    assert response.status_code == 200
    assert "tokens/logout_confirm.html" in [t.name for t in response.templates]
    assert LoginSession.objects.filter(user=person, ended_at__isnull=True).count() == 2


def test_tampered_confirmation_form_signs_nobody_out(signed_in: HttpClient, person) -> None:
    # the confirmation carries a signed request; a forged one is refused
    page = signed_in.get(LOGOUT)
    blob = page.context["request_blob"]
    response = signed_in.post(LOGOUT + "/confirm", {"request": blob + "x", "decision": "logout"})
    assert_refused_page(response)
    assert session_alive(person)


def test_logout_when_already_signed_out_still_redirects(client: HttpClient, flow: Flow) -> None:
    # RP-Initiated Logout 1.0 §3: the RP gets its redirect even if the OP session is gone
    hint = flow.tokens()["id_token"]
    response = client.get(
        LOGOUT, {"id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT_URI, "state": "z"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{POST_LOGOUT_URI}?state=z"


@pytest.mark.parametrize("field", ["client_id", "id_token_hint", "post_logout_redirect_uri"])
def test_nul_byte_in_a_logout_parameter_is_400(lenient_client: HttpClient, rp, field: str):
    # RP-Initiated Logout 1.0 §2: a malformed request gets an error page, never a 500
    params = {"client_id": rp.client_id, "post_logout_redirect_uri": POST_LOGOUT_URI}
    params[field] = "abc\x00def"
    response = lenient_client.get(LOGOUT, params, HTTP_ACCEPT="text/html")  # as browsers send
    assert_refused_page(response)


def test_unregistered_post_logout_redirect_uri_says_so_and_offers_a_plain_sign_out(
    flow: Flow, person
) -> None:
    # RP-Initiated Logout 1.0 §3: no redirect to it; the page names the actual problem
    hint = flow.tokens()["id_token"]
    response = flow.http.get(
        LOGOUT, {"id_token_hint": hint, "post_logout_redirect_uri": "https://evil.example/out"}
    )

    assert_refused_page(response)
    page = response.content.decode()
    assert (
        "Example RP asked to send you to an address it has not registered for after sign-out"
        in page
    )
    assert "post_logout_redirect_uri" in page  # what the application's owner must fix
    assert "sign-in request" not in page
    assert "evil.example" not in page
    assert session_alive(person)

    blob = re.search(r'name="request" value="([^"]+)"', page)
    assert blob is not None
    signed_out = flow.http.post(
        "/oauth/logout/confirm", {"request": blob.group(1), "decision": "logout"}
    )
    assert signed_out.status_code == 200  # signed out, and sent nowhere
    assert "Location" not in signed_out
    assert not session_alive(person)


def test_post_logout_redirect_uri_of_an_unnamed_application_says_so(flow: Flow, person) -> None:
    response = flow.http.get(LOGOUT, {"post_logout_redirect_uri": POST_LOGOUT_URI})

    assert_refused_page(response)
    page = response.content.decode()
    assert "without saying which application it is" in page
    assert "sign-in request" not in page
