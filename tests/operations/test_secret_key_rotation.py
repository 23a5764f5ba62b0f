"""Rotating IDP_SECRET_KEY without downtime (docs/operations.md, "The secret key"): the new key
with the old one in IDP_SECRET_KEY_FALLBACKS, then the fallback dropped. What the old key made
keeps working through the window, and what is stored under it is made again under the new key
on its next use, so dropping the fallback afterwards breaks nothing that was used; without the
fallback, each fails with its protocol's error, never a 500. Each phase is a settings pair,
as a process started with that environment would have it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client as HttpClient
from django.utils.crypto import salted_hmac

from apps.core.secret_keys import key_id
from apps.mfa.recovery import recovery_codes_generate
from apps.sessions.binding import DEVICE_COOKIE
from apps.sessions.models import LoginSession
from apps.signin.links import link_make
from apps.signin.recovery import RESET
from apps.tokens import dpop
from apps.tokens.models import Client
from apps.tokens.services import client_create
from tests.dpop.conftest import DPoPKey
from tests.rp import PASSWORD
from tests.signin.test_second_factor import totp_of
from tests.tokens.conftest import TOKEN, basic

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = secrets.token_urlsafe(64), secrets.token_urlsafe(64)
BEFORE = (OLD, [])  # (IDP_SECRET_KEY, IDP_SECRET_KEY_FALLBACKS)
TEACH = (OLD, [NEW])  # rolling updates only: every process learns the new key first
SWITCH = (NEW, [OLD])
AFTER = (NEW, [])
SKIPPED = AFTER  # the new key without the window: what an old key made meets no fallback


def _phase(settings: Any, phase: tuple[str, list[str]]) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = phase


# --- client secrets at the token endpoint (RFC 6749 §2.3.1) -----------------------------------


def _client_credentials(client_id: str, secret: str) -> Any:
    return HttpClient().post(
        TOKEN, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(client_id, secret)
    )


def _job() -> tuple[str, str]:
    client, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    return client.client_id, secret


def _stored_key(client_id: str) -> str:
    stored = Client.objects.get(client_id=client_id).client_secret
    return str(stored.split("$")[1])


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL this thread sends, as it is sent (not Django's bounded query log)."""
    sent: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield sent


def test_a_client_secret_of_the_old_key_authenticates_and_moves_to_the_new_key(settings) -> None:
    _phase(settings, BEFORE)
    client_id, secret = _job()
    assert _stored_key(client_id) == key_id(OLD)
    assert _client_credentials(client_id, secret).status_code == 200  # keys made, client cached

    _phase(settings, SWITCH)
    assert _client_credentials(*_job()).status_code == 200  # the new settings' caches warm
    with _statements() as rekeyed:
        first = _client_credentials(client_id, secret)
    assert first.status_code == 200, first.content
    assert _stored_key(client_id) == key_id(NEW)
    assert _client_credentials(client_id, secret).status_code == 200  # reloads the client
    with _statements() as current:
        assert _client_credentials(client_id, secret).status_code == 200
    # One UPDATE, once; a use under the current key costs what it did before.
    assert [sql for sql in rekeyed if sql.startswith('UPDATE "tokens_client"')] != []
    assert len(rekeyed) == len(current) + 1

    _phase(settings, AFTER)  # the fallback dropped: the re-keyed hash needs none
    assert _client_credentials(client_id, secret).status_code == 200


def test_a_rolling_update_needs_the_teaching_step_for_re_keyed_secrets(settings) -> None:
    # A process already on SWITCH re-keys a secret under NEW; one still on BEFORE cannot
    # verify it any more, one on TEACH can.
    _phase(settings, BEFORE)
    client_id, secret = _job()
    _phase(settings, SWITCH)
    assert _client_credentials(client_id, secret).status_code == 200  # re-keyed under NEW
    _phase(settings, BEFORE)
    assert _client_credentials(client_id, secret).status_code == 401
    _phase(settings, TEACH)
    assert _client_credentials(client_id, secret).status_code == 200


def test_a_secret_hashed_before_hashes_named_their_key_verifies_and_gains_the_key_id(
    settings,
) -> None:
    _phase(settings, BEFORE)
    client_id, secret = _job()
    digest = salted_hmac("tessera.client-secret", secret, secret=OLD, algorithm="sha256")
    legacy = f"hmac_sha256${digest.hexdigest()}"  # the form stored before key ids
    Client.objects.filter(client_id=client_id).update(client_secret=legacy)
    _phase(settings, SWITCH)
    assert _client_credentials(client_id, secret).status_code == 200
    assert _stored_key(client_id) == key_id(NEW)


def test_without_the_fallback_a_client_secret_of_the_old_key_is_invalid_client(settings) -> None:
    _phase(settings, BEFORE)
    client_id, secret = _job()
    _phase(settings, SKIPPED)
    refused = _client_credentials(client_id, secret)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"  # RFC 6749 §5.2
    assert _stored_key(client_id) == key_id(OLD)  # a failure re-keys nothing


# --- DPoP server nonces (RFC 9449 §8) ---------------------------------------------------------


def test_a_dpop_nonce_handed_out_under_the_old_key_is_accepted_in_the_window(settings) -> None:
    _phase(settings, BEFORE)
    client_id, secret = _job()
    key = DPoPKey()
    old_nonce = dpop.current_nonce()

    def token_with(nonce: str) -> Any:
        return HttpClient().post(
            TOKEN,
            {"grant_type": "client_credentials"},
            headers={"Authorization": basic(client_id, secret), "DPoP": key.proof(nonce=nonce)},
        )

    _phase(settings, SWITCH)
    assert dpop.current_nonce() != old_nonce
    accepted = token_with(old_nonce)
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["token_type"] == "DPoP"
    _phase(settings, SKIPPED)
    refused = token_with(old_nonce)
    assert refused.status_code == 400
    assert refused.json()["error"] == "use_dpop_nonce"  # §8: the client retries with this one
    assert refused["DPoP-Nonce"] == dpop.current_nonce()


# --- the browser: session, device cookie, recovery code ------------------------------------


def _sign_in(http: HttpClient, person: Any) -> None:
    http.get("/login")  # the first page gives the browser its device cookie
    done = http.post("/login?next=/account/", {"email": person.email, "password": PASSWORD})
    assert done.status_code == 302, done.content
    assert done["Location"] == "/account/"


def _signed_in(http: HttpClient) -> bool:
    answer = http.get("/account/")
    assert answer.status_code in (200, 302)  # never a 500
    return answer.status_code == 200


def test_a_session_and_device_cookie_of_the_old_key_stay_signed_in(settings, person) -> None:
    _phase(settings, BEFORE)
    http = HttpClient()
    _sign_in(http, person)
    [session] = LoginSession.objects.filter(user=person)
    assert session.device_id  # bound to the device cookie
    old_cookie = http.cookies[DEVICE_COOKIE].value

    _phase(settings, SWITCH)
    page = http.get("/account/")
    assert page.status_code == 200
    # Signed again under the new key, with the same id: the device stays the same.
    assert page.cookies[DEVICE_COOKIE].value != old_cookie
    assert page.cookies[settings.SESSION_COOKIE_NAME].value  # Django re-keyed the session
    session.refresh_from_db()
    assert session.ended_at is None

    _phase(settings, AFTER)
    assert _signed_in(http)
    session.refresh_from_db()
    assert session.ended_at is None


def test_without_the_fallback_the_old_session_is_signed_out_cleanly(settings, person) -> None:
    _phase(settings, BEFORE)
    http = HttpClient()
    _sign_in(http, person)
    _phase(settings, SKIPPED)
    answer = http.get("/account/")
    assert answer.status_code == 302
    assert answer["Location"].startswith("/login")


def test_a_device_cookie_of_the_old_key_alone_is_the_same_device(settings, person) -> None:
    # A device cookie outlives sessions (two years): signed again, it keeps the device's id.
    _phase(settings, BEFORE)
    first_browser = HttpClient()
    _sign_in(first_browser, person)
    [first] = LoginSession.objects.filter(user=person)
    same_browser = HttpClient()  # signed out, the device cookie kept
    same_browser.cookies[DEVICE_COOKIE] = first_browser.cookies[DEVICE_COOKIE].value

    _phase(settings, SWITCH)
    assert same_browser.get("/login").cookies[DEVICE_COOKIE].value  # signed again here
    _phase(settings, AFTER)
    done = same_browser.post("/login?next=/account/", {"email": person.email, "password": PASSWORD})
    assert done.status_code == 302
    second = LoginSession.objects.filter(user=person).exclude(pk=first.pk).get()
    assert second.device_id == first.device_id


def _recovery_sign_in(http: HttpClient, person: Any, code: str) -> Any:
    http.post("/login?next=/account/", {"email": person.email, "password": PASSWORD})
    return http.post("/login/second-factor", {"method": "recovery", "code": code})


def test_a_recovery_code_of_the_old_key_works_once(settings, person) -> None:
    _phase(settings, BEFORE)
    totp_of(person)
    codes = recovery_codes_generate(user=person)

    _phase(settings, SWITCH)
    used = _recovery_sign_in(HttpClient(), person, codes[0])
    assert used.status_code == 200
    assert "You have <strong>9</strong> left" in used.content.decode()
    again = _recovery_sign_in(HttpClient(), person, codes[0])
    assert again.status_code == 400
    assert LoginSession.objects.filter(user=person).count() == 1

    # The other nine stay under the old key (only their hashes are kept): the status command
    # says so, and that the fallback cannot go yet without voiding them.
    out = StringIO()
    call_command("secret_key_status", stdout=out)
    report = out.getvalue()
    assert f"recovery code sets with unused codes\t{key_id(OLD)}\t1\tfallback" in report
    assert f"fallback {key_id(OLD)} still holds stored hashes" in report

    _phase(settings, SKIPPED)
    refused = _recovery_sign_in(HttpClient(), person, codes[1])
    assert refused.status_code == 400  # the page's message, never a 500
    assert LoginSession.objects.filter(user=person).count() == 1


def test_the_status_command_counts_client_secrets_by_key(settings) -> None:
    _phase(settings, BEFORE)
    _job()  # stays under OLD: never authenticates
    moves_id, moves_secret = _job()
    _phase(settings, SWITCH)
    assert _client_credentials(moves_id, moves_secret).status_code == 200
    out = StringIO()
    call_command("secret_key_status", stdout=out)
    report = out.getvalue()
    assert f"IDP_SECRET_KEY: {key_id(NEW)}" in report
    assert f"client secrets\t{key_id(NEW)}\t1\tcurrent" in report
    assert f"client secrets\t{key_id(OLD)}\t1\tfallback" in report
    assert OLD not in report  # ids, never the keys
    assert NEW not in report


# --- mailed links (password reset) ------------------------------------------------------------


def test_a_reset_link_of_the_old_key_works_in_the_window(settings, person) -> None:
    _phase(settings, BEFORE)
    token = link_make(RESET, person)  # what password_reset_mail puts in the message
    _phase(settings, SWITCH)
    shown = HttpClient().get(f"/password/reset/{token}")
    assert shown.status_code == 200
    assert f'name="token" value="{token}"' in shown.content.decode()
    new_password = "another long passphrase"
    data = {"token": token, "password": new_password, "password_again": new_password}
    done = HttpClient().post(f"/password/reset/{token}", data)
    assert done.status_code == 200
    person.refresh_from_db()
    assert person.check_password(new_password)


def test_without_the_fallback_a_reset_link_of_the_old_key_gets_the_bad_link_page(
    settings, person
) -> None:
    _phase(settings, BEFORE)
    token = link_make(RESET, person)
    _phase(settings, SKIPPED)
    refused = HttpClient().get(f"/password/reset/{token}")
    assert refused.status_code == 400
    assert "This link does not work" in refused.content.decode()


# --- the setting --------------------------------------------------------------------------


def _check(tmp_path: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "PORT"))}
    env.update({"IDP_DATA_DIR": str(tmp_path), "IDP_SECRET_KEY": NEW, **environ})
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fallbacks", "expected"),
    [
        ("short-old-key", "key 1 of 1 is too short"),
        (f"{OLD}, tooshort", "key 2 of 2 is too short"),
        (f"{OLD} {NEW}", "key 2 of 2 is IDP_SECRET_KEY itself"),
        (f"{OLD},{OLD}", "lists one key twice"),
    ],
)
def test_a_malformed_fallback_stops_startup_naming_the_variable(
    tmp_path, fallbacks, expected
) -> None:
    result = _check(tmp_path, IDP_SECRET_KEY_FALLBACKS=fallbacks)
    assert result.returncode != 0
    assert "IDP_SECRET_KEY_FALLBACKS" in result.stderr
    assert expected in result.stderr
    assert OLD not in result.stderr  # a key is never echoed
    assert NEW not in result.stderr
    assert "Traceback" not in result.stderr


def test_fallbacks_separated_by_commas_or_whitespace_start(tmp_path) -> None:
    other = secrets.token_urlsafe(64)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django.conf import settings; print(len(settings.SECRET_KEY_FALLBACKS))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "PORT"))},
             "IDP_DATA_DIR": str(tmp_path), "IDP_SECRET_KEY": NEW,
             "IDP_SECRET_KEY_FALLBACKS": f" {OLD},\n{other} "},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "2"
