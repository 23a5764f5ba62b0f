"""The browser session store (apps/sessions/browser_store.py): Django's database store with a
sign-in's session written once, and session fixation still impossible (OWASP ASVS 3.2.1)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from apps.accounts.services import user_create
from apps.sessions.browser_store import SessionStore
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db


def test_it_is_the_configured_engine() -> None:
    assert settings.SESSION_ENGINE == "apps.sessions.browser_store"


def test_cycle_key_keeps_the_data_under_a_new_key_and_drops_the_old_row() -> None:
    store = SessionStore()
    store["cart"] = "kept"
    store.save()
    old_key = store.session_key
    store.cycle_key()
    assert store.session_key is None  # drawn when the response saves it
    assert not Session.objects.filter(session_key=old_key).exists()
    with CaptureQueriesContext(connection) as captured:
        store.save()
    inserts = [q["sql"] for q in captured.captured_queries if "django_session" in q["sql"]]
    [insert] = inserts
    assert insert.startswith("INSERT")
    assert store.session_key not in (None, old_key)
    assert SessionStore(store.session_key)["cart"] == "kept"


def test_a_planted_session_id_is_not_the_one_signed_in() -> None:
    # Session fixation: an attacker makes a session and plants its id in the victim's browser.
    user_create(email="ada@example.com", password=PASSWORD)
    attacker = HttpClient()
    attacker.get("/login")
    planted = attacker.session
    planted["x"] = "y"
    planted.save()
    victim = HttpClient()
    victim.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    response = victim.post("/login", {"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 302
    signed_in_key = victim.cookies[settings.SESSION_COOKIE_NAME].value
    assert signed_in_key != planted.session_key
    assert not Session.objects.filter(session_key=planted.session_key).exists()
    assert "_auth_user_id" in SessionStore(signed_in_key)
    assert "_auth_user_id" not in attacker.session  # the attacker's id signs nobody in


@pytest.mark.django_db(transaction=True)
def test_a_save_outside_a_transaction_is_one_round_trip() -> None:
    # Autocommit, as a request runs: no BEGIN and COMMIT around the one statement (Django's
    # store: SELECT 1 (exists), BEGIN, INSERT, COMMIT).
    store = SessionStore()
    store["a"] = 1
    with CaptureQueriesContext(connection) as captured:
        store.save()
    assert [q["sql"].split()[0] for q in captured.captured_queries] == ["INSERT"]
    store["a"] = 2
    with CaptureQueriesContext(connection) as captured:
        store.save()
    assert [q["sql"].split()[0] for q in captured.captured_queries] == ["UPDATE"]
    assert SessionStore(store.session_key)["a"] == 2


@pytest.mark.django_db(transaction=True)
def test_a_save_of_a_session_deleted_meanwhile_is_an_update_error() -> None:
    # What SessionMiddleware turns into SessionInterrupted (a logout in another tab).
    from django.contrib.sessions.backends.base import UpdateError

    store = SessionStore()
    store["a"] = 1
    store.save()
    Session.objects.filter(session_key=store.session_key).delete()
    store["a"] = 2
    with pytest.raises(UpdateError):
        store.save()
