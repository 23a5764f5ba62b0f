"""The sign-in's second factor (apps/signin/second_factor*.py; issue 15): asked after the
password when the person has one, a policy requires one, or authorize asks a level for it
(`step_up`); nothing session-like before it is proven; TOTP (RFC 6238), recovery codes (NIST
SP 800-63B §5.1.2) and WebAuthn (L2 §7.2) against the software authenticator; step-up of a
live session; enrolment at sign-in; bad input answered with a message, never a 500."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pyotp
import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY as AUTH_USER_KEY
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.accounts.services import mfa_required_by_policy
from apps.core.models import SecurityEvent
from apps.mfa.models import TotpDevice
from apps.mfa.passkeys import webauthn_registration_begin, webauthn_registration_finish
from apps.mfa.recovery import recovery_codes_generate
from apps.mfa.totp import totp_confirm, totp_enrol, totp_secret
from apps.sessions.levels import ACR_HARDWARE_KEY, ACR_MFA, ACR_PASSWORD
from apps.sessions.models import LoginSession
from apps.signin import pipeline
from apps.signin.second_factor import CHALLENGE_KEY
from tests.accounts.factories import OrganizationMembershipFactory
from tests.mfa.authenticator import SoftAuthenticator
from tests.rp import PASSWORD
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db

NEXT = "/account/"


def totp_of(user: User) -> str:
    """A confirmed authenticator app, confirmed with a code of two steps ago (so the code of
    now is still unused); returns its secret."""
    enrolment = totp_enrol(user=user, name="Phone")
    earlier = timezone.now() - timedelta(seconds=60)
    totp_confirm(
        device=enrolment.device, code=pyotp.TOTP(enrolment.secret).at(earlier), now=earlier
    )
    return enrolment.secret


def code_now(secret: str) -> str:
    return pyotp.TOTP(secret).now()


def authenticator(**kwargs: Any) -> SoftAuthenticator:
    return SoftAuthenticator(
        origin=settings.ISSUER, rp_id=urlsplit(settings.ISSUER).hostname or "", **kwargs
    )


def key_of(user: User, **kwargs: Any) -> SoftAuthenticator:
    key = authenticator(**kwargs)
    ceremony = webauthn_registration_begin(user=user)
    webauthn_registration_finish(
        user=user,
        ceremony_id=ceremony.id,
        response=json.dumps(key.create(ceremony.options_json)),
        name="Key",
    )
    return key


def password_step(http: HttpClient, user: User, query: dict[str, str] | None = None) -> Any:
    params = {"next": NEXT, **(query or {})}
    return http.post(
        "/login?" + urlencode(params), {"email": user.email, "password": PASSWORD, "next": NEXT}
    )


def live_sessions(user: User) -> list[LoginSession]:
    return list(LoginSession.objects.filter(user=user, ended_at__isnull=True))


def test_a_person_with_totp_is_asked_for_it_and_nothing_is_signed_in_before(http, person):
    secret = totp_of(person)
    answer = password_step(http, person)
    assert answer.status_code == 302
    assert answer["Location"] == "/login/second-factor"
    # No login session, no Django login before the factor (OWASP ASVS 4.0.3 V3.2.1).
    assert live_sessions(person) == []
    assert AUTH_USER_KEY not in http.session
    pending = http.session[CHALLENGE_KEY]
    assert pending["amr"] == ["pwd"]
    assert pending["next_url"] == NEXT

    page = http.get("/login/second-factor")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'autocomplete="one-time-code"' in html
    assert 'inputmode="numeric"' in html
    assert '<label for="id_totp_code">' in html
    assert "<script>" not in html
    assert " style=" not in html
    assert 'name="password"' not in html

    done = http.post("/login/second-factor", {"method": "totp", "code": code_now(secret)})
    assert done.status_code == 302
    assert done["Location"] == NEXT
    [session] = live_sessions(person)
    assert session.amr == ["pwd", "otp"]
    assert (session.acr, session.security_level) == (ACR_MFA, 2)
    assert http.session[AUTH_USER_KEY] == str(person.pk)
    assert CHALLENGE_KEY not in http.session
    assert SecurityEvent.objects.filter(event_type="login.succeeded", user_id=person.pk).exists()


def test_a_person_without_factor_or_policy_signs_in_with_the_password_alone(http, person):
    answer = password_step(http, person)
    assert answer.status_code == 302
    assert answer["Location"] == NEXT
    assert [s.amr for s in live_sessions(person)] == [["pwd"]]


def test_identify_reads_the_policy_as_accounts_does(person):
    # The pipeline's one-statement reading of apps.accounts.services.mfa_required_by_policy.
    membership = OrganizationMembershipFactory(user=person)
    Organization.objects.filter(pk=membership.organization_id).update(mfa_required=True)
    attempt = pipeline.Attempt(request=None, email="ADA@example.com", password="")  # type: ignore[arg-type]
    pipeline.identify(attempt)
    assert attempt.user == person
    assert attempt.user.organization_requires_mfa is mfa_required_by_policy(person) is True
    assert attempt.user.has_second_factor is False


def test_identify_with_its_questions_is_still_an_index_lookup(person):
    # The EXISTS questions ride on the one lookup; it must stay answerable from the unique
    # index on lower(email) (as tests/signin/test_statement_budget.py checks for the manager).
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    attempt = pipeline.Attempt(request=None, email="ada@example.com", password="")  # type: ignore[arg-type]
    with CaptureQueriesContext(connection) as captured:
        pipeline.identify(attempt)
    [lookup] = [q["sql"] for q in captured.captured_queries]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {lookup}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "accounts_user_email_ci_uniq" in plan, plan


def test_an_oversized_body_is_refused_not_a_500(http, person):
    key_of(person)
    password_step(http, person)
    huge = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    answer = http.post("/login/second-factor/webauthn", {"ceremony": "x", "credential": huge})
    assert answer.status_code == 413  # the project's answer to a body over the limit
    assert live_sessions(person) == []


def test_a_recovery_code_signs_in_and_says_how_many_remain(http, person):
    totp_of(person)
    codes = recovery_codes_generate(user=person)
    password_step(http, person)
    page = http.post("/login/second-factor", {"method": "recovery", "code": codes[0].lower()})
    assert page.status_code == 200
    assert "You have <strong>9</strong> left" in page.content.decode()
    assert f'href="{NEXT}"' in page.content.decode()
    assert [s.amr for s in live_sessions(person)] == [["pwd", "otp"]]


@pytest.mark.parametrize(
    ("backup_eligible", "amr", "acr"),
    [(False, ["pwd", "hwk", "mfa"], ACR_HARDWARE_KEY), (True, ["pwd", "swk", "mfa"], ACR_MFA)],
)
def test_a_security_key_as_second_factor(http, person, backup_eligible, amr, acr):
    key = key_of(person, backup_eligible=backup_eligible)
    password_step(http, person)
    page = http.get("/login/second-factor").content.decode()
    assert 'data-webauthn="get"' in page
    assert 'data-options-url="/login/second-factor/webauthn/options"' in page
    # the one external script (manifest storage: a content hash in its name)
    tag = r'<script src="/static/mfa/webauthn\.[0-9a-f]+\.js" nonce="[^"]+" defer>'
    assert re.search(tag, page)
    options = http.post("/login/second-factor/webauthn/options")
    assert options.status_code == 200
    body = options.json()
    assert set(body) == {"ceremony", "publicKey"}
    answer = key.get(json.dumps(body["publicKey"]))
    done = http.post(
        "/login/second-factor/webauthn",
        {"ceremony": body["ceremony"], "credential": json.dumps(answer)},
    )
    assert done.status_code == 302
    assert done["Location"] == NEXT
    [session] = live_sessions(person)
    assert (session.amr, session.acr) == (amr, acr)


def test_the_options_endpoint_takes_the_csrf_header_the_script_sends(person):
    # The browser contract (issue 15): the script POSTs the form's fields with X-CSRFToken.
    key_of(person)
    browser = HttpClient(enforce_csrf_checks=True)
    login_page = browser.get("/login")
    token = login_page.context["csrf_token"]
    browser.post(
        "/login?" + urlencode({"next": NEXT}),
        {"email": person.email, "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    page = browser.get("/login/second-factor").content.decode()
    [form_token] = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[:1]
    refused = browser.post("/login/second-factor/webauthn/options")
    assert refused.status_code == 403
    allowed = browser.post(
        "/login/second-factor/webauthn/options",
        {"csrfmiddlewaretoken": form_token, "ceremony": "", "credential": ""},
        HTTP_X_CSRFTOKEN=form_token,
    )
    assert allowed.status_code == 200
    assert allowed["Content-Type"] == "application/json"


def test_a_person_deactivated_meanwhile_cannot_finish(http, person):
    secret = totp_of(person)
    password_step(http, person)
    User.objects.filter(pk=person.pk).update(is_active=False)
    answer = http.post("/login/second-factor", {"method": "totp", "code": code_now(secret)})
    assert answer.status_code == 400
    assert live_sessions(person) == []


def test_a_replayed_totp_code_is_refused(person):
    # RFC 6238 §5.2: each time step's code is accepted once.
    secret = totp_of(person)
    first, second = HttpClient(), HttpClient()
    code = code_now(secret)
    password_step(first, person)
    assert first.post("/login/second-factor", {"method": "totp", "code": code}).status_code == 302
    password_step(second, person)
    again = second.post("/login/second-factor", {"method": "totp", "code": code})
    assert again.status_code == 400
    assert "used already" in again.content.decode()
    assert len(live_sessions(person)) == 1


@pytest.mark.parametrize(
    "code", ["12345", "abcdef", "1234567", "", "\uff11\uff12\uff13\uff14\uff15\uff16"]
)
def test_a_malformed_code_is_told_and_costs_no_attempt(http, person, code, redis_client):
    totp_of(person)
    password_step(http, person)
    answer = http.post("/login/second-factor", {"method": "totp", "code": code})
    assert answer.status_code == 400
    assert "Type the 6 digits" in answer.content.decode() or "required" in answer.content.decode()
    assert not redis_client.exists(f"tessera:rl:lock:mfa:{person.pk}")


def test_bad_webauthn_input_is_a_message_not_a_500(http, person):
    key_of(person)
    password_step(http, person)
    for data in (
        {"ceremony": "x", "credential": "{"},
        {"ceremony": "x" * 65, "credential": "{}"},
        {"ceremony": "nope", "credential": json.dumps({"id": "AA", "type": "public-key"})},
        {"ceremony": "x", "credential": "x" * (64 * 1024 + 1)},
        {},
    ):
        answer = http.post("/login/second-factor/webauthn", data)
        assert answer.status_code == 400, (data, answer.status_code)
        assert b'role="alert"' in answer.content
    assert live_sessions(person) == []


def test_a_challenge_page_without_a_pending_sign_in_says_to_sign_in_again(http):
    assert b"Sign in again" in http.get("/login/second-factor").content
    for path in (
        "/login/second-factor",
        "/login/second-factor/webauthn",
        "/login/second-factor/continue",
        "/login/second-factor/enrol/totp",
        "/login/second-factor/enrol/webauthn",
    ):
        answer = http.post(path, {"method": "totp", "code": "123456"})
        assert answer.status_code == 400, path
        assert b"Sign in again" in answer.content
    options = http.post("/login/second-factor/webauthn/options")
    assert options.status_code == 400
    assert "error" in options.json()


def test_a_pending_sign_in_expires_after_five_minutes(http, person):
    secret = totp_of(person)
    password_step(http, person)
    browser = http.session
    browser[CHALLENGE_KEY] = {**browser[CHALLENGE_KEY], "started": time.time() - 301}
    browser.save()
    answer = http.post("/login/second-factor", {"method": "totp", "code": code_now(secret)})
    assert answer.status_code == 400
    assert b"took too long" in answer.content
    assert live_sessions(person) == []


def test_the_pending_sign_in_lives_in_a_new_browser_session_key(http, person):
    totp_of(person)
    http.get("/login")
    http.session.save()
    before = http.session.session_key
    password_step(http, person)
    assert http.session.session_key != before


# --- step-up ---------------------------------------------------------------------------------


def step_up_url(acr: str) -> str:
    return "/login?" + urlencode({"step_up": acr, "next": NEXT})


def test_step_up_asks_the_missing_factor_of_the_live_session(http, person):
    secret = totp_of(person)
    session = force_sign_in(http, person)
    key_before = http.session.session_key
    asked = http.get(step_up_url(ACR_MFA))
    assert asked.status_code == 302
    assert asked["Location"] == "/login/second-factor"
    page = http.get("/login/second-factor").content.decode()
    assert 'name="password"' not in page
    assert "Confirm it is you" in page
    done = http.post("/login/second-factor", {"method": "totp", "code": code_now(secret)})
    assert done.status_code == 302
    assert done["Location"] == NEXT
    session.refresh_from_db()
    assert (session.amr, session.acr, session.security_level) == (["pwd", "otp"], ACR_MFA, 2)
    assert [s.pk for s in live_sessions(person)] == [session.pk]  # the same session (sid)
    assert http.session.session_key != key_before  # renewed on privilege change
    assert http.get("/account/").status_code == 200  # still signed in


def test_step_up_to_a_hardware_key_offers_only_device_bound_keys(http, person):
    totp_of(person)
    force_sign_in(http, person)
    http.get(step_up_url(ACR_HARDWARE_KEY))
    page = http.get("/login/second-factor").content.decode()
    # TOTP cannot reach level 3: nothing to offer, a way on and a way to enrol, no loop.
    assert "A stronger sign-in is needed" in page
    assert 'action="/login/second-factor/continue"' in page
    going_on = http.post("/login/second-factor/continue")
    assert going_on.status_code == 302
    assert going_on["Location"] == NEXT
    [session] = live_sessions(person)
    assert session.acr == ACR_PASSWORD


def test_step_up_with_a_device_bound_key_reaches_level_three(http, person):
    key = key_of(person)
    session = force_sign_in(http, person)
    http.get(step_up_url(ACR_HARDWARE_KEY))
    body = http.post("/login/second-factor/webauthn/options").json()
    answer = key.get(json.dumps(body["publicKey"]))
    done = http.post(
        "/login/second-factor/webauthn",
        {"ceremony": body["ceremony"], "credential": json.dumps(answer)},
    )
    assert done.status_code == 302
    session.refresh_from_db()
    assert session.acr == ACR_HARDWARE_KEY


def test_a_session_at_the_level_goes_straight_on(http, person):
    force_sign_in(http, person)
    answer = http.get(step_up_url(ACR_PASSWORD))
    assert answer.status_code == 302
    assert answer["Location"] == NEXT


def test_without_a_live_session_step_up_signs_in_then_asks_the_factor(http, person):
    secret = totp_of(person)
    answer = password_step(http, person, {"step_up": ACR_MFA})
    assert answer["Location"] == "/login/second-factor"
    http.post("/login/second-factor", {"method": "totp", "code": code_now(secret)})
    assert [s.acr for s in live_sessions(person)] == [ACR_MFA]


def test_asked_for_mfa_without_a_factor_the_person_may_go_on(http, person):
    # acr_values only asks (OIDC Core §3.1.2.1): the person is told and may continue; the
    # authorize request then decides.
    answer = password_step(http, person, {"step_up": ACR_MFA})
    assert answer["Location"] == "/login/second-factor"
    page = http.get("/login/second-factor").content.decode()
    assert "Set up a second factor" in page
    assert live_sessions(person) == []
    going_on = http.post("/login/second-factor/continue")
    assert going_on.status_code == 302
    assert going_on["Location"] == NEXT
    assert [s.amr for s in live_sessions(person)] == [["pwd"]]


def test_a_factor_that_is_due_cannot_be_skipped(http, person):
    totp_of(person)
    password_step(http, person)
    answer = http.post("/login/second-factor/continue")
    assert answer.status_code == 400
    assert live_sessions(person) == []


def test_a_person_with_a_factor_cannot_enrol_around_it(http, person):
    # Enrolment at sign-in is for a person with no factor; else it would skip the one they have.
    totp_of(person)
    password_step(http, person, {"step_up": ACR_HARDWARE_KEY})
    page = http.get("/login/second-factor/enrol")
    assert page.status_code == 302
    assert page["Location"] == "/login/second-factor"
    assert http.post("/login/second-factor/enrol/totp", {"code": "123456"}).status_code == 302
    options = http.post("/login/second-factor/enrol/webauthn/options")
    assert options.status_code == 400
    assert "already" in options.json()["error"]
    assert http.post("/login/second-factor/enrol/webauthn", {}).status_code == 302
    # nor go on without it, though TOTP cannot reach the level asked
    assert http.post("/login/second-factor/continue").status_code == 400
    assert live_sessions(person) == []
    assert TotpDevice.objects.filter(user=person).count() == 1


def test_cancel_drops_the_pending_sign_in(http, person):
    totp_of(person)
    password_step(http, person)
    left = http.post("/login/second-factor/cancel")
    assert left["Location"] == "/login"
    assert CHALLENGE_KEY not in http.session
    assert (
        http.post("/login/second-factor", {"method": "totp", "code": "123456"}).status_code == 400
    )


# --- enrolment at sign-in ---------------------------------------------------------------------


def _secret_on(html: str) -> str:
    [key] = re.findall(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', html)
    return key.replace(" ", "")


def test_a_person_who_must_have_mfa_enrols_an_app_and_gets_recovery_codes(http, person):
    User.objects.filter(pk=person.pk).update(mfa_required=True)
    answer = password_step(http, person)
    assert answer["Location"] == "/login/second-factor"
    to_enrol = http.get("/login/second-factor")
    assert to_enrol.status_code == 302
    assert to_enrol["Location"] == "/login/second-factor/enrol"
    page = http.get("/login/second-factor/enrol").content.decode()
    assert "<svg" in page
    assert 'data-webauthn="create"' in page
    assert 'data-options-url="/login/second-factor/enrol/webauthn/options"' in page
    # Going on without a factor is not offered when a policy requires one.
    assert http.post("/login/second-factor/continue")["Location"].endswith("/enrol")
    secret = _secret_on(page)
    # the same device on a reload, not a new secret each time
    assert _secret_on(http.get("/login/second-factor/enrol").content.decode()) == secret
    done = http.post("/login/second-factor/enrol/totp", {"code": code_now(secret)})
    assert done.status_code == 200
    html = done.content.decode()
    assert len(re.findall(r"<li><code>[A-Z2-7-]{19}</code></li>", html)) == 10
    assert f'href="{NEXT}"' in html
    [session] = live_sessions(person)
    assert (session.amr, session.acr) == (["pwd", "otp"], ACR_MFA)
    assert TotpDevice.objects.filter(user=person, confirmed_at__isnull=False).count() == 1
    assert totp_secret(TotpDevice.objects.get(user=person)) == secret


def test_step_up_for_a_person_without_factor_enrols_and_steps_the_session_up(http, person):
    session = force_sign_in(http, person)
    http.get(step_up_url(ACR_MFA))
    page = http.get("/login/second-factor/enrol").content.decode()
    done = http.post("/login/second-factor/enrol/totp", {"code": code_now(_secret_on(page))})
    assert done.status_code == 200
    assert b"recovery codes" in done.content
    session.refresh_from_db()
    assert (session.amr, session.acr) == (["pwd", "otp"], ACR_MFA)


def test_the_global_setting_takes_a_person_through_passkey_enrolment(http, person, settings):
    settings.MFA_REQUIRED = True
    password_step(http, person)
    key = authenticator()
    body = http.post("/login/second-factor/enrol/webauthn/options").json()
    assert set(body) == {"ceremony", "publicKey"}
    done = http.post(
        "/login/second-factor/enrol/webauthn",
        {
            "ceremony": body["ceremony"],
            "credential": json.dumps(key.create(json.dumps(body["publicKey"]))),
            "name": "My key",
        },
    )
    assert done.status_code == 200, done.content[:500]
    assert b"recovery codes" in done.content
    [session] = live_sessions(person)
    assert session.amr == ["pwd", "hwk", "user"]
    assert session.acr == ACR_HARDWARE_KEY


@pytest.fixture
def http() -> HttpClient:
    return HttpClient()
