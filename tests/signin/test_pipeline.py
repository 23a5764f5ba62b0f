"""The sign-in pipeline (apps/signin/pipeline.py): its steps, in order, and what each owes."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.contrib.auth.signals import user_logged_in
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
from apps.signin import pipeline
from apps.threat.ruleset import ruleset_current
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db


def test_the_steps_read_in_the_order_of_the_journey() -> None:
    # DESIGN.md: identify → limits → first factor → [second factor] → [risk] → session,
    # with the new-device notice around the session (issue 14); the risk decision comes
    # before the second factor (issue 16): a rule's require_mfa must be able to ask one.
    assert [step.__name__ for step in pipeline.STEPS] == [
        "identify",
        "limits",
        "first_factor_password",
        "not_blocked",
        "assess_risk",
        "second_factor",
        "recognize_device",
        "open_session",
        "notify_new_device",
    ]


def test_nothing_of_ours_listens_to_user_logged_in() -> None:
    # The session is opened by a step, not by a receiver (issue 12); Django's own
    # update_last_login is replaced by the session step's UPDATE.
    modules = {receiver().__module__ for _, receiver in user_logged_in.receivers if receiver()}
    assert not {m for m in modules if m.startswith(("apps.", "idp."))}, modules
    assert "django.contrib.auth.models" not in modules  # update_last_login


class CountingHasher(Argon2PasswordHasher):
    """The project's argon2id (OWASP parameters), counting the hashes it computes."""

    algorithm = "argon2"
    time_cost, memory_cost, parallelism = 2, 19 * 1024, 1
    computed = 0

    def encode(self, password: str, salt: str) -> str:
        CountingHasher.computed += 1
        return super().encode(password, salt)

    def verify(self, password: str, encoded: str) -> bool:
        CountingHasher.computed += 1
        return super().verify(password, encoded)


@pytest.fixture
def counting(settings) -> type[CountingHasher]:
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    CountingHasher.computed = 0
    return CountingHasher


@pytest.mark.parametrize("who", ["unknown", "no_password", "deactivated", "wrong_password"])
def test_every_refused_address_costs_one_password_hash(client, counting, who) -> None:
    # No timing oracle on which addresses have accounts (OWASP Authentication Cheat Sheet,
    # "Authentication Responses"); the refusal is the same message and status for all.
    if who == "no_password":
        user_create(email="fed@example.com", password=None)
    elif who == "deactivated":
        user = user_create(email="fed@example.com", password=PASSWORD)
        User.objects.filter(pk=user.pk).update(is_active=False)
    elif who == "wrong_password":
        user_create(email="fed@example.com", password="another passphrase entirely")
    counting.computed = 0
    response = client.post("/login", {"email": "fed@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert b"Email or password is incorrect." in response.content
    assert counting.computed == 1
    assert not LoginSession.objects.exists()
    assert SecurityEvent.objects.get(event_type="login.failed").error_code == "wrong_credentials"


def test_an_unknown_address_costs_what_a_wrong_password_costs(client, counting) -> None:
    # The timing class, asserted by structure rather than the clock: one argon2id hash and
    # the same SQL statements for both (OWASP Authentication Cheat Sheet, "Authentication
    # Responses": response times must not tell which addresses have accounts).
    user_create(email="real@example.com", password="another passphrase entirely")
    client.get("/login")  # a browser: it holds a device cookie
    ruleset_current()  # the threat rules, loaded once per process, as after any sign-in
    hashes, statements = {}, {}
    for email in ("real@example.com", "nobody@example.com"):
        counting.computed = 0
        with CaptureQueriesContext(connection) as queries:
            assert client.post("/login", {"email": email, "password": PASSWORD}).status_code == 400
        hashes[email], statements[email] = counting.computed, len(queries)
    assert hashes == {"real@example.com": 1, "nobody@example.com": 1}
    assert statements["real@example.com"] == statements["nobody@example.com"], statements


def test_a_sign_in_records_last_login_once(client) -> None:
    person = user_create(email="ada@example.com", password=PASSWORD)
    assert person.last_login is None
    response = client.post("/login", {"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 302
    person.refresh_from_db()
    session = LoginSession.objects.get(user=person)
    assert person.last_login is not None
    assert abs((person.last_login - session.created_at).total_seconds()) < 5


def test_a_staff_member_without_next_lands_on_the_console(client) -> None:
    user_create(email="op@example.com", password=PASSWORD, staff_role="administrator")
    response = client.post("/login", {"email": "op@example.com", "password": PASSWORD})
    assert (response.status_code, response["Location"]) == (302, "/console/")
