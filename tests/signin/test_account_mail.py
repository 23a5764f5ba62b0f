"""The messages of the account page and of sign-in (issue 14), delivered by a real Celery
worker: the e-mail change link to the NEW address and the notice to the OLD one, and the
new-device notice of the sign-in pipeline (apps/signin/pipeline.py notify_new_device).

Messages are read from the suite's SMTP server (the `mailbox` fixture)."""

from __future__ import annotations

import re
import time
import uuid
from email.message import EmailMessage
from urllib.parse import unquote

import pytest
from django.conf import settings
from django.test import Client as HttpClient

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from apps.sessions.binding import DEVICE_COOKIE
from tests.conftest import Mailbox
from tests.rp import PASSWORD
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def _to(mailbox: Mailbox, address: str, subject: str) -> list[EmailMessage]:
    """What arrived so far for `address` with `subject` (no waiting)."""
    return [
        m for m in mailbox.messages() if address in str(m["X-RcptTo"]) and subject in m["Subject"]
    ]


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


def test_email_change_mails_the_new_address_then_notifies_the_old(mailbox: Mailbox) -> None:
    old, new = _unique("ada"), _unique("ada-new")
    person = user_create(email=old, name="Ada Lovelace", password=PASSWORD)
    http = HttpClient()
    force_sign_in(http, person)

    asked = http.post("/account/email", {"email": new, "password": PASSWORD})
    assert asked.status_code == 302

    link_mail = mailbox.wait_for(to=new, subject_contains="Confirm your new e-mail address")
    assert _to(mailbox, old, "Confirm your new e-mail address") == []
    text = Mailbox.text(link_mail)
    found = re.search(r"(https?://\S+/account/email/confirm\?t=\S+)", text)
    assert found, text
    path = found.group(1).removeprefix(settings.ISSUER)
    assert link_mail.get_body(preferencelist=("html",)) is not None  # and an HTML part

    # A mail scanner's GET changes nothing; the person's POST does.
    assert HttpClient().get(path).status_code == 200
    assert User.objects.get(pk=person.pk).email == old
    token = path.split("t=", 1)[1]
    done = HttpClient().post("/account/email/confirm", {"t": unquote(token)})
    assert done.status_code == 200
    person.refresh_from_db()
    assert (person.email, person.email_verified) == (new, True)

    notice = mailbox.wait_for(to=old, subject_contains="Your e-mail address was changed")
    assert new in Mailbox.text(notice)
    assert "/account/" in Mailbox.text(notice)
    # Single use: the same link again is refused.
    assert HttpClient().post("/account/email/confirm", {"t": unquote(token)}).status_code == 400


def _sign_in(http: HttpClient, address: str) -> None:
    http.get("/login")  # the first page gives the browser its device cookie
    assert DEVICE_COOKIE in http.cookies
    response = http.post("/login", {"email": address, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]


def _new_device_flags(user: User, count: int, deadline: float = 30) -> list[bool]:
    """The new_device flag of the person's sign-ins, once `count` are in the outbox (recorded
    outside a transaction, they reach it through the journal's drain thread)."""
    end = time.monotonic() + deadline
    while True:
        events = SecurityEvent.objects.filter(event_type="login.succeeded", user_id=str(user.pk))
        flags = [e.metadata["new_device"] for e in events.order_by("occurred_at")]
        if len(flags) >= count or time.monotonic() > end:
            return flags
        time.sleep(0.05)


def test_a_sign_in_from_a_new_device_mails_the_person(mailbox: Mailbox) -> None:
    address = _unique("grace")
    person = user_create(email=address, name="Grace Hopper", password=PASSWORD)
    laptop, phone = HttpClient(), HttpClient()

    _sign_in(laptop, address)  # the account's very first sign-in: nothing to compare with
    _sign_in(laptop, address)  # the same browser again
    _sign_in(phone, address)  # another browser: a new device

    assert _new_device_flags(person, 3) == [False, False, True]
    notice = mailbox.wait_for(to=address, subject_contains="New sign-in to your account")
    text = Mailbox.text(notice)
    assert "Grace" in text
    assert "/account/" in text
    assert "Browser:" in text
    # Only the one: the first sign-in and the known browser sent nothing.
    # (one worker, one queue: anything queued before the notice was delivered before it)
    assert len(_to(mailbox, address, "New sign-in to your account")) == 1
