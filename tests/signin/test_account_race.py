"""Two accounts moving to one address at once (apps/signin/account.py email_change_confirm):
the check that no other account has it cannot see a change not yet committed, so the unique
index on lower(email) decides, and the loser gets the page that says the address is taken,
not a 500."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test import Client as HttpClient

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.signin.links import link_make
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_a_lock(deadline: float = 30) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


def test_an_address_taken_meanwhile_is_a_clear_refusal() -> None:
    ada = user_create(email="ada@example.com", password=PASSWORD)
    grace = user_create(email="grace@example.com", password=PASSWORD)
    token = link_make("email_change", ada, {"email": "shared@example.com"})
    grace_moved, may_commit = threading.Event(), threading.Event()
    answers: list[int] = []

    def grace_takes_it() -> None:
        try:
            with transaction.atomic():
                User.objects.filter(pk=grace.pk).update(email="shared@example.com")
                grace_moved.set()
                may_commit.wait(30)
        finally:
            connections.close_all()

    def ada_confirms() -> None:
        try:
            answers.append(HttpClient().post("/account/email/confirm", {"t": token}).status_code)
        finally:
            connections.close_all()

    first = threading.Thread(target=grace_takes_it)
    first.start()
    assert grace_moved.wait(30)
    second = threading.Thread(target=ada_confirms)
    second.start()
    assert _waiting_on_a_lock()  # Ada's UPDATE waits on the index entry Grace's holds
    may_commit.set()
    first.join(30)
    second.join(30)

    assert answers == [409]
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    assert User.objects.get(pk=grace.pk).email == "shared@example.com"
