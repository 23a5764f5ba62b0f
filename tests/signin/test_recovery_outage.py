"""Redis down while a person resets their password: the reset is still answered with a page,
never a 500 (DESIGN: nothing is lost when a dependency fails)."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from celery import current_app
from django.test import Client as HttpClient
from kombu.exceptions import OperationalError as KombuOperationalError

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.signin.links import link_make
from apps.signin.recovery import RESET
from apps.signin.recovery_views import NOT_SENT
from tests.servers import Redis
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(tmp_path, settings) -> Any:
    """A Redis of this test's own as the application's (the suite's stays up for others)."""
    server = Redis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url(0)  # apps.core.redis.get_redis() follows it
    yield server
    server.stop(signal.SIGKILL)


def test_a_reset_with_redis_down_answers_a_page(own_redis: Any) -> None:
    ada = user_create(email="ada@example.com", password="a long correct passphrase")
    token = link_make(RESET, ada)
    own_redis.stop(signal.SIGKILL)
    new = "quite another passphrase"

    response = HttpClient().post(
        f"/password/reset/{token}", {"token": token, "password": new, "password_again": new}
    )

    assert response.status_code == 200
    assert "Your new password is set." in response.content.decode()
    assert User.objects.get(pk=ada.pk).check_password(new)


@pytest.mark.django_db(transaction=True)  # the task is queued once the request's work commits
def test_a_reset_asked_for_while_the_broker_refuses_says_nothing_is_coming(monkeypatch) -> None:
    """The link's task cannot be queued and nothing queues it later (docs/operations.md "The
    broker down"): the page says so rather than "check your mail", the same for an address
    without an account (OWASP Forgot Password Cheat Sheet: one answer for every address).
    tests/faults/test_broker_down.py does this against a real broker, killed."""
    user_create(email="ada@example.com", password="a long correct passphrase")

    def refused(*args: Any, **kwargs: Any) -> None:
        raise KombuOperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(current_app, "send_task", refused)
    pages = [
        HttpClient().post("/password/forgot", {"email": email})
        for email in ("ada@example.com", "nobody@example.com")
    ]

    assert [page.status_code for page in pages] == [503, 503]
    for page in pages:
        assert NOT_SENT in page.content.decode()
        assert "Check your mail" not in page.content.decode()


@pytest.fixture
def broker_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every publish refused as a broker that is down refuses it (kombu's error)."""

    def refused(*args: Any, **kwargs: Any) -> None:
        raise KombuOperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(current_app, "send_task", refused)


@pytest.mark.django_db(transaction=True)
def test_a_registration_while_the_broker_refuses_says_nothing_is_coming(
    broker_refuses: None, settings: Any
) -> None:
    # The same page for a new address and one with an account (no account enumeration).
    settings.REGISTRATION = "open"
    user_create(email="ada@example.com", password="a long correct passphrase")
    new = "a long new passphrase"
    form = {"name": "Ada", "password1": new, "password2": new}

    pages = [
        HttpClient().post("/register", {**form, "email": email})
        for email in ("ada@example.com", "babbage@example.com")
    ]

    assert [page.status_code for page in pages] == [503, 503]
    for page in pages:
        assert NOT_SENT in page.content.decode()
        assert "Check your" not in page.content.decode()
    assert not User.objects.filter(email="babbage@example.com").exists()


@pytest.mark.django_db(transaction=True)
def test_an_address_change_while_the_broker_refuses_keeps_the_address_and_says_so(
    broker_refuses: None,
) -> None:
    ada = user_create(email="ada@example.com", password="a long correct passphrase")
    http = HttpClient()
    force_sign_in(http, ada)

    page = http.post(
        "/account/email", {"email": "ada@new.example.com", "password": "a long correct passphrase"}
    )

    assert page.status_code == 503
    assert NOT_SENT in page.content.decode()
    assert "Your address stays ada@example.com." in page.content.decode()
    assert "We sent a link" not in page.content.decode()
    assert User.objects.get(pk=ada.pk).email == "ada@example.com"


@pytest.mark.django_db(transaction=True)
def test_a_new_verification_link_while_the_broker_refuses_is_not_promised(
    broker_refuses: None,
) -> None:
    ada = user_create(email="ada@example.com", password="a long correct passphrase")
    http = HttpClient()
    force_sign_in(http, ada)

    page = http.post("/account/verify", follow=True)

    assert NOT_SENT in page.content.decode()
    assert "We sent a new link" not in page.content.decode()
