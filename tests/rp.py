"""Relying-party fixtures (a plugin of tests/conftest.py): a registered client, a person who
can sign in, and a form-filling client for our hosted pages (sign-in, second factor,
consent)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from urllib.parse import urljoin, urlsplit

import pyotp
import pytest
import requests
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.mfa.totp import totp_confirm, totp_enrol
from apps.tokens.services import client_create

PASSWORD = "a long correct passphrase"
REDIRECT_URI = "https://rp.example.com/callback"
POST_LOGOUT_URI = "https://rp.example.com/signed-out"
SECOND_FACTOR_PATH = "/login/second-factor"


@dataclass
class RegisteredClient:
    client_id: str
    client_secret: str | None


@pytest.fixture
def person(db):
    return user_create(email="ada@example.com", name="Ada Lovelace", password=PASSWORD)


@pytest.fixture
def rp(db) -> RegisteredClient:
    client, secret = client_create(
        name="Example RP",
        redirect_uris=[REDIRECT_URI],
        post_logout_redirect_uris=[POST_LOGOUT_URI],
        grant_types=["authorization_code", "refresh_token"],
    )
    return RegisteredClient(client.client_id, secret)


def totp_enrolled(user: User) -> str:
    """A confirmed authenticator app (the service functions, as the security page calls them),
    confirmed with the code of two steps ago so that the code of now is still unused; returns
    its secret."""
    enrolment = totp_enrol(user=user, name="Phone")
    earlier = timezone.now() - timedelta(seconds=60)
    totp_confirm(
        device=enrolment.device, code=pyotp.TOTP(enrolment.secret).at(earlier), now=earlier
    )
    return enrolment.secret


class TotpCodes:
    """The codes an authenticator app shows, as a person types them: the code of now, or,
    when it was used already (RFC 6238 §5.2: a verifier accepts a step once), the next step's,
    which the ±1 step window still accepts. Never waits for the clock."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.last_step: int | None = None

    def __call__(self) -> str:
        now = int(time.time()) // self.totp.interval
        step = now if self.last_step is None else max(now, self.last_step + 1)
        assert step <= now + 1, "three codes in one step: the server's window has none left"
        self.last_step = step
        return self.totp.generate_otp(step)


class Browser:
    """What a person's browser does on our hosted pages: follow redirects on our origin,
    fill the sign-in, second-factor and consent forms, and stop at the relying party's
    redirect. `filled` names the forms it filled, in order ("password", "second-factor",
    "consent")."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.filled: list[str] = []

    def _csrf(self, html: str) -> str:
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert match, "the form has no CSRF token"
        return match.group(1)

    def _hidden(self, html: str, name: str) -> str:
        match = re.search(rf'name="{name}" value="([^"]*)"', html)
        assert match, f"the form has no {name} field"
        return unescape(match.group(1))

    def visit(self, url: str, *, email: str = "ada@example.com", password: str = PASSWORD,
              consent: str | None = "allow",
              second_factor: Callable[[], str] | None = None) -> requests.Response:  # fmt: skip
        """Follows our pages until a response leaves our origin (the RP's redirect) or
        stops on a page with no form to fill. `second_factor` gives the authenticator app's
        code (e.g. a TotpCodes) when the second-factor page asks; without it, or when the
        page offers no app, the visit stops on that page."""
        response = self.http.get(url, allow_redirects=False, timeout=30)
        for _ in range(10):
            if response.is_redirect:
                target = urljoin(response.url, response.headers["Location"])
                if not target.startswith(self.base):
                    return response
                response = self.http.get(target, allow_redirects=False, timeout=30)
            elif urlsplit(response.url).path.startswith(SECOND_FACTOR_PATH):
                # Its forms post to /login/second-factor…: never the password form below.
                if second_factor is None or 'name="method" value="totp"' not in response.text:
                    return response
                self.filled.append("second-factor")
                response = self.http.post(
                    urljoin(self.base, SECOND_FACTOR_PATH),
                    data={"csrfmiddlewaretoken": self._csrf(response.text), "method": "totp",
                          "code": second_factor()},
                    headers={"Referer": response.url}, allow_redirects=False, timeout=30,
                )  # fmt: skip
                if response.status_code == 400:
                    return response
            elif 'name="password"' in response.text and 'name="email"' in response.text:
                self.filled.append("password")
                response = self.http.post(
                    response.url,
                    data={"csrfmiddlewaretoken": self._csrf(response.text), "email": email,
                          "password": password, "next": self._hidden(response.text, "next")},
                    headers={"Referer": response.url}, allow_redirects=False, timeout=30,
                )  # fmt: skip
                if response.status_code == 400:
                    return response
            elif 'name="decision"' in response.text and consent is not None:
                action = re.search(r'<form method="post" action="([^"]+)"', response.text)
                assert action
                response = self.http.post(
                    urljoin(response.url, action.group(1)),
                    data={"csrfmiddlewaretoken": self._csrf(response.text), "decision": consent,
                          "request": self._hidden(response.text, "request")},
                    headers={"Referer": response.url}, allow_redirects=False, timeout=30,
                )  # fmt: skip
                self.filled.append("consent")
                consent = None
            else:
                return response
        raise AssertionError("too many steps")


@pytest.fixture
def hosted_pages(live_server) -> Iterator[Browser]:
    browser = Browser(live_server.url)
    yield browser
    # A kept-alive connection would hold a live-server thread past the test.
    browser.http.close()


def new_verifier() -> str:
    return secrets.token_urlsafe(48)
