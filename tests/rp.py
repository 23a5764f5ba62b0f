"""Relying-party fixtures (a plugin of tests/conftest.py): a registered client, a person who
can sign in, and a form-filling client for our hosted pages."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from urllib.parse import urljoin

import pytest
import requests

from apps.accounts.services import user_create
from apps.tokens.services import client_create

PASSWORD = "a long correct passphrase"
REDIRECT_URI = "https://rp.example.com/callback"
POST_LOGOUT_URI = "https://rp.example.com/signed-out"


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


class Browser:
    """What a person's browser does on our hosted pages: follow redirects on our origin,
    fill the sign-in and consent forms, and stop at the relying party's redirect."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def _csrf(self, html: str) -> str:
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert match, "the form has no CSRF token"
        return match.group(1)

    def _hidden(self, html: str, name: str) -> str:
        match = re.search(rf'name="{name}" value="([^"]*)"', html)
        assert match, f"the form has no {name} field"
        return unescape(match.group(1))

    def visit(self, url: str, *, email: str = "ada@example.com", password: str = PASSWORD,
              consent: str | None = "allow") -> requests.Response:  # fmt: skip
        """Follows our pages until a response leaves our origin (the RP's redirect) or
        stops on a page with no form to fill."""
        response = self.http.get(url, allow_redirects=False, timeout=30)
        for _ in range(10):
            if response.is_redirect:
                target = urljoin(response.url, response.headers["Location"])
                if not target.startswith(self.base):
                    return response
                response = self.http.get(target, allow_redirects=False, timeout=30)
            elif 'action="/login' in response.text or 'name="password"' in response.text:
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
