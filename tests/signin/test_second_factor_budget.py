"""SQL statements of a password + TOTP sign-in (issue 15), as tests/signin/
test_statement_budget.py counts the password alone: without the test's wrapping transaction,
as production runs (events recorded outside a transaction go to the audit journal)."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from apps.mfa.totp import totp_confirm, totp_enrol
from apps.sessions.models import LoginSession
from apps.threat.ruleset import ruleset_current
from tests.rp import PASSWORD
from tests.tokens.test_statement_budgets import _show, statements

pytestmark = pytest.mark.django_db(transaction=True)

# The account read with its second-factor and policy questions (one statement, as without
# MFA), and the browser session inserted under a new key with the pending sign-in.
PASSWORD_STEP_BUDGET = 2
# Measured 10: the browser session read, the account, the TOTP devices locked, their step
# written and mfa.succeeded (in that transaction), then the session step as without MFA
# (last_login and the row lock, live sessions counted, the login session inserted), the
# old browser session deleted and the signed-in one inserted under a new key. (An account
# that signed in before adds the new-device question, as without MFA.)
TOTP_STEP_BUDGET = 10


def test_password_then_totp_runs_within_its_budget(person) -> None:
    enrolment = totp_enrol(user=person, name="Phone")
    earlier = timezone.now() - timedelta(seconds=60)
    totp_confirm(
        device=enrolment.device, code=pyotp.TOTP(enrolment.secret).at(earlier), now=earlier
    )
    browser = HttpClient()
    ruleset_current()  # the threat rules, loaded once per process, as after any sign-in
    with statements() as sql:
        asked = browser.post("/login", {"email": person.email, "password": PASSWORD})
    assert asked["Location"] == "/login/second-factor"
    assert len(sql) <= PASSWORD_STEP_BUDGET, _show(sql)
    with statements() as sql:
        done = browser.post(
            "/login/second-factor",
            {"method": "totp", "code": pyotp.TOTP(enrolment.secret).now()},
        )
    assert done.status_code == 302
    assert LoginSession.objects.filter(user=person).count() == 1
    assert len(sql) <= TOTP_STEP_BUDGET, _show(sql)
