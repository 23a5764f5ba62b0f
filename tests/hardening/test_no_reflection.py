"""No error_description repeats what the client sent (issue 20: invalid UTF-8 came back).

Each parameter of authorize, token, introspect, revoke, userinfo and PAR is sent in turn as
a marker followed by invalid UTF-8 and control characters; no error description (JSON body,
redirect, WWW-Authenticate) and no error page may hold the marker. RFC 6749 §5.2 limits
error_description to printable ASCII; OWASP ASVS 4.0 V5.3.1: output never reflects raw
input."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.test import Client as HttpClient

from apps.tokens.scopes import ScopeRefused, granted_scopes
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import (
    AUTHORIZE,
    INTROSPECT,
    TOKEN,
    USERINFO,
    authorize_params,
    basic,
    new_pkce,
    register,
)

__all__ = ["register"]

MARKER = "ECHO7"
HOSTILE = f"{MARKER}%FF%FE%01%0A%1B"  # invalid UTF-8, then SOH, LF, ESC
FORM = "application/x-www-form-urlencoded"
AUTHORIZE_EXTRA = [
    "prompt", "max_age", "claims", "acr_values", "request_uri", "ui_locales", "login_hint",
    "id_token_hint", "resource", "response_mode", "request", "display",
]  # fmt: skip
TOKEN_PARAMS = [
    "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope",
    "resource", "client_id", "client_assertion", "client_assertion_type",
]  # fmt: skip
OTHER_PARAMS = [
    "token", "token_type_hint", "client_id", "scope", "redirect_uri", "response_type",
    "code_challenge", "code_challenge_method", "state", "prompt", "claims", "request",
]  # fmt: skip


def _descriptions(answer) -> Iterator[str]:
    """Every error description in an answer, and the page itself when it is an error page."""
    if answer.get("Content-Type", "").startswith("application/json"):
        yield str(answer.json().get("error_description", ""))
    elif answer.status_code >= 400:
        yield answer.content.decode("utf-8", "replace")
    location = answer.get("Location", "")
    query = parse_qs(urlsplit(location).query)
    yield from query.get("error_description", [])
    yield from re.findall(r'error_description="([^"]*)"', answer.get("WWW-Authenticate", ""))


def _reflected(label: str, answer) -> list[str]:
    assert answer.status_code < 500, f"{label}: {answer.status_code}"
    return [f"{label}: {text[:120]!r}" for text in _descriptions(answer) if MARKER in text]


@pytest.fixture
def sent(db, person, rp, register) -> list[tuple[str, object]]:
    """Every endpoint's answer to each parameter made hostile in turn."""
    anonymous = HttpClient(raise_request_exception=False)
    browser = HttpClient(raise_request_exception=False)
    force_sign_in(browser, person)
    service = register(grant_types=["client_credentials"], skip_consent=True)
    base = authorize_params(rp.client_id, new_pkce())
    answers: list[tuple[str, object]] = []
    for who, http in (("anonymous", anonymous), ("signed in", browser)):
        for name in [*base, *AUTHORIZE_EXTRA]:
            query = "&".join(f"{k}={quote(v)}" for k, v in base.items() if k != name)
            answer = http.get(f"{AUTHORIZE}?{query}&{name}={HOSTILE}")
            answers.append((f"authorize ({who}) {name}", answer))
    for client in (rp, service):
        auth = basic(client.client_id, client.client_secret)
        for grant in ("authorization_code", "refresh_token", "client_credentials"):
            for name in TOKEN_PARAMS:
                body = f"grant_type={grant}&{name}={HOSTILE}"
                answer = anonymous.post(TOKEN, body, content_type=FORM, HTTP_AUTHORIZATION=auth)
                answers.append((f"token {grant} {name}", answer))
        for path in (INTROSPECT, "/oauth/revoke", "/oauth/par"):
            for name in OTHER_PARAMS:
                body = f"{name}={HOSTILE}"
                answer = anonymous.post(path, body, content_type=FORM, HTTP_AUTHORIZATION=auth)
                answers.append((f"{path} {name}", answer))
    for header in (f"Bearer {MARKER}\xff\x01", f"DPoP {MARKER}\x1b", f"Basic {MARKER}"):
        answers.append((f"userinfo {header!r}", anonymous.get(USERINFO, HTTP_AUTHORIZATION=header)))
    body = f"access_token={HOSTILE}"
    answers.append(("userinfo form", anonymous.post(USERINFO, body, content_type=FORM)))
    answers.append(("token basic", anonymous.post(TOKEN, "grant_type=client_credentials",
                    content_type=FORM, HTTP_AUTHORIZATION="Basic RUNITzc6/wEK")))  # fmt: skip
    return answers


def test_no_error_description_reflects_a_parameter(sent) -> None:
    reflected = [line for label, answer in sent for line in _reflected(label, answer)]

    assert reflected == []
    assert len(sent) > 150


@pytest.mark.django_db
def test_a_scope_refusal_names_only_scopes_this_server_defines(rp) -> None:
    from apps.tokens.models import Client

    client = Client.objects.get(client_id=rp.client_id)
    with pytest.raises(ScopeRefused) as one:
        granted_scopes([f"{MARKER}\ufffd\x01"], client=client)
    with pytest.raises(ScopeRefused) as several:
        granted_scopes(["admin", f"{MARKER}\x1b", "nope"], client=client)

    assert MARKER not in str(one.value)
    assert str(several.value) == (
        "None of the scopes asked for (admin, 2 this server does not define) is available to "
        "this client."
    )
