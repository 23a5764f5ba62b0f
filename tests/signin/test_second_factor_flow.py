"""Step-up through the pages, end to end with the authorize endpoint (OIDC Core §3.1.2.1
acr_values; docs/architecture.md "Authentication levels and step-up"): authorize sends the
browser to `/login?step_up=…`, the second-factor page asks the missing factor of the live
session, and the same authorization request comes back with a code whose ID token says so;
a person with no factor for a client that requires MFA is told, and authorize refuses
(unmet_authentication_requirements) without a loop."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
from django.test import Client as HttpClient

from apps.sessions.levels import ACR_MFA
from apps.sessions.models import LoginSession
from apps.tokens.models import Client
from apps.tokens.services import consent_grant
from tests.rp import RegisteredClient
from tests.signin.browser import force_sign_in
from tests.signin.test_second_factor import totp_of
from tests.tokens.conftest import SCOPE, Flow, client_redirect, new_pkce, query_of, verify_id_token

pytestmark = pytest.mark.django_db


def _flow(http: HttpClient, rp: RegisteredClient, person: Any) -> Flow:
    consent_grant(
        user_id=person.pk, client=Client.objects.get(client_id=rp.client_id), scopes=SCOPE.split()
    )
    return Flow(http, rp)


def test_acr_values_step_up_asks_the_totp_code_and_comes_back_with_a_code(person, rp):
    secret = totp_of(person)
    http = HttpClient()
    session = force_sign_in(http, person)  # a password session (level 1)
    flow = _flow(http, rp, person)
    pkce = new_pkce()
    to_login = flow.authorize(pkce, acr_values=ACR_MFA)
    assert urlsplit(to_login["Location"]).path == "/login"
    assert query_of(to_login["Location"])["step_up"] == ACR_MFA
    asked = http.get(to_login["Location"])
    assert asked["Location"] == "/login/second-factor"
    back = http.post("/login/second-factor", {"method": "totp", "code": pyotp.TOTP(secret).now()})
    assert back.status_code == 302
    assert back["Location"].startswith("/oauth/authorize?")
    answer = client_redirect(http.get(back["Location"]))
    tokens = flow.exchange(answer["code"], pkce.verifier).json()
    claims = verify_id_token(tokens["id_token"], rp.client_id)
    assert (claims["acr"], claims["amr"]) == (ACR_MFA, ["pwd", "otp"])
    assert claims["sid"] == str(session.pk)


def test_a_client_that_requires_mfa_and_a_person_without_factor_end_without_a_loop(person, rp):
    Client.objects.filter(client_id=rp.client_id).update(require_mfa=True)
    http = HttpClient()
    force_sign_in(http, person)
    flow = _flow(http, rp, person)
    to_login = flow.authorize(new_pkce())
    asked = http.get(to_login["Location"])
    assert asked["Location"] == "/login/second-factor"
    page = http.get("/login/second-factor").content.decode()
    assert "A stronger sign-in is needed" in page
    assert 'href="/login/second-factor/enrol"' in page  # enrolment offered
    back = http.post("/login/second-factor/continue")
    refused = client_redirect(http.get(back["Location"]))
    assert refused["error"] == "unmet_authentication_requirements"
    assert [s.acr for s in LoginSession.objects.filter(user=person)] == ["urn:tessera:acr:pwd"]
