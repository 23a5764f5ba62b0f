"""The messages of verification and reset, as the Celery worker delivers them, and the links
in them working end to end (the pages themselves: test_recovery.py)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client as HttpClient

from apps.accounts.models import User
from apps.accounts.services import user_create
from tests.conftest import Mailbox
from tests.signin.browser import force_sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("mailbox")]

PASSWORD = "a long correct passphrase"


def _person() -> User:
    return user_create(email=f"ada-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD)


def test_the_verification_mail_carries_a_link_that_verifies(mailbox: Mailbox) -> None:
    ada = _person()
    http = HttpClient()
    force_sign_in(http, ada)

    assert http.post("/account/verify").status_code == 302
    message = mailbox.wait_for(to=ada.email, subject_contains="Verify your e-mail address")

    assert message["Auto-Submitted"] == "auto-generated"
    assert "The link works for 24 hours, once." in Mailbox.text(message)
    link = Mailbox.link(message, "/account/verify/")
    path = link.split("://", 1)[1].partition("/")[2]
    token = path.rpartition("/")[2]
    assert HttpClient().get(f"/{path}").status_code == 200
    assert HttpClient().post(f"/{path}", {"token": token}).status_code == 200
    assert User.objects.get(pk=ada.pk).email_verified


def test_forgot_mails_a_reset_link_and_the_reset_mails_a_notice(mailbox: Mailbox) -> None:
    ada = _person()

    assert HttpClient().post("/password/forgot", {"email": ada.email.upper()}).status_code == 200
    message = mailbox.wait_for(to=ada.email, subject_contains="Choose a new password")

    text = Mailbox.text(message)
    assert "The link works for 30 minutes, once." in text
    path = Mailbox.link(message, "/password/reset/").split("://", 1)[1].partition("/")[2]
    token = path.rpartition("/")[2]
    new = "quite another passphrase"
    data = {"token": token, "password": new, "password_again": new}
    assert HttpClient().post(f"/{path}", data).status_code == 200
    assert User.objects.get(pk=ada.pk).check_password(new)
    mailbox.wait_for(to=ada.email, subject_contains="Your password was changed")


def test_an_operators_reset_mail_says_an_administrator_sent_it(mailbox: Mailbox) -> None:
    from tests.console.conftest import csrf_token, signed_in_as

    ada = _person()
    operator, path = signed_in_as("operator"), f"/console/users/{ada.pk}/password-reset/send/"
    form = operator.get(path)
    sent = operator.post(path, {"csrfmiddlewaretoken": csrf_token(form.content)})
    assert sent.status_code == 302

    message = mailbox.wait_for(to=ada.email, subject_contains="Choose a new password")
    assert "An administrator sent you this link" in Mailbox.text(message)
