"""Authentication levels in the protocol: acr_values_supported (OIDC Discovery 1.0 §3), acr /
amr / auth_time in ID tokens (OIDC Core §2) and access tokens (RFC 9068 §2.2.1), and
acr_values, max_age and the client's MFA requirement driving step-up at /authorize (OIDC
Core §3.1.2.1, §3.1.2.6). An MFA session is simulated with session_step_up until the sign-in
pipeline asks the second factor (apps/mfa)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command

from apps.sessions.levels import ACR_HARDWARE_KEY, ACR_MFA, ACR_PASSWORD
from apps.sessions.models import LoginSession
from apps.sessions.services import session_step_up
from apps.tokens.authorize import STEP_UP_MARK
from apps.tokens.models import Client
from apps.tokens.validation import validate_access_token
from tests.rp import PASSWORD, REDIRECT_URI
from tests.tokens.conftest import (
    STATE,
    Flow,
    client_redirect,
    new_pkce,
    query_of,
    verify_id_token,
)

pytestmark = pytest.mark.django_db


def login_session(person) -> LoginSession:
    return LoginSession.objects.get(user=person, ended_at__isnull=True)


def step_up(person, amr: list[str]) -> LoginSession:
    """What the sign-in pipeline's second-factor step will do once a factor is verified."""
    session = login_session(person)
    assert session_step_up(session=session, amr=amr)
    return session


def age(person, seconds: int) -> None:
    session = login_session(person)
    earlier = session.created_at - timedelta(seconds=seconds)
    LoginSession.objects.filter(pk=session.pk).update(created_at=earlier, authenticated_at=earlier)


def assert_step_up_redirect(response, acr: str) -> str:
    """The sign-in page, asked for the level `acr`; returns where it comes back to."""
    assert response.status_code == 302, response.content[:300]
    location = response["Location"]
    assert urlsplit(location).path == "/login"
    query = query_of(location)
    assert query["step_up"] == acr
    assert STEP_UP_MARK in query_of(query["next"])
    return query["next"]


def assert_error(response, error: str) -> None:
    answer = client_redirect(response)
    assert answer["error"] == error, answer
    assert (answer["state"], answer["iss"]) == (STATE, settings.ISSUER)
    assert "code" not in answer


def test_discovery_lists_the_levels_lowest_first(client) -> None:
    # OIDC Discovery 1.0 §3 acr_values_supported
    metadata = client.get("/.well-known/openid-configuration").json()
    assert metadata["acr_values_supported"] == [ACR_PASSWORD, ACR_MFA, ACR_HARDWARE_KEY]


def test_tokens_say_how_the_person_authenticated(flow: Flow, person) -> None:
    # OIDC Core §2 (ID token); RFC 9068 §2.2.1 (access token): the same three claims
    tokens = flow.tokens()
    id_claims = verify_id_token(tokens["id_token"], flow.rp.client_id)
    access = validate_access_token(tokens["access_token"])
    session = login_session(person)
    assert session.authenticated_at is not None
    expected = {
        "acr": ACR_PASSWORD,
        "amr": ["pwd"],
        "auth_time": int(session.authenticated_at.timestamp()),
    }
    for claims in (id_claims, access):
        assert {name: claims[name] for name in expected} == expected


def test_tokens_of_an_mfa_session_say_mfa(flow: Flow, person) -> None:
    step_up(person, ["otp"])
    tokens = flow.tokens(acr_values=ACR_MFA)
    for claims in (
        verify_id_token(tokens["id_token"], flow.rp.client_id),
        validate_access_token(tokens["access_token"]),
    ):
        assert (claims["acr"], claims["amr"]) == (ACR_MFA, ["pwd", "otp"])
    refreshed = flow.refresh(tokens["refresh_token"]).json()  # OIDC Core §12.2: the same
    assert verify_id_token(refreshed["id_token"], flow.rp.client_id)["acr"] == ACR_MFA


def test_acr_values_above_the_session_go_to_step_up(flow: Flow, person) -> None:
    # OIDC Core §3.1.2.1 acr_values: a stronger level than the session's is a second factor,
    # asked on the sign-in page (step_up), then the same request again — not a new login
    pkce = new_pkce()
    back = assert_step_up_redirect(flow.authorize(pkce, acr_values=ACR_MFA), ACR_MFA)
    before = login_session(person)
    age(person, 60)
    step_up(person, ["otp"])

    answer = client_redirect(flow.http.get(back))
    tokens = flow.exchange(answer["code"], pkce.verifier).json()
    claims = verify_id_token(tokens["id_token"], flow.rp.client_id)
    assert (claims["acr"], claims["amr"]) == (ACR_MFA, ["pwd", "otp"])
    assert claims["sid"] == str(before.pk)  # the same session, stepped up
    assert claims["auth_time"] >= int(time.time()) - 5  # the step-up's time, not the login's
    assert LoginSession.objects.filter(user=person).count() == 1


def test_acr_values_with_prompt_none_below_the_session_is_login_required(flow: Flow) -> None:
    # OIDC Core §3.1.2.6: authentication is needed and prompt=none forbids showing it
    assert_error(flow.authorize(acr_values=ACR_MFA, prompt="none"), "login_required")


def test_a_session_above_the_asked_level_satisfies_it(flow: Flow, person) -> None:
    step_up(person, ["hwk"])  # pwd + hwk: the hardware-key level
    tokens = flow.tokens(acr_values=ACR_MFA, prompt="none")
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["acr"] == ACR_HARDWARE_KEY


def test_any_of_the_asked_values_satisfies_the_request(flow: Flow, person) -> None:
    # OIDC Core §3.1.2.1: values in order of preference, each acceptable to the client
    step_up(person, ["otp"])
    tokens = flow.tokens(acr_values=f"{ACR_HARDWARE_KEY} {ACR_MFA}", prompt="none")
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["acr"] == ACR_MFA


@pytest.mark.parametrize("acr_values", ["urn:example:gold", "0", "urn:example:x  urn:y"])
def test_unknown_acr_values_are_ignored(flow: Flow, acr_values: str) -> None:
    # OIDC Core §5.5.1.1: acr_values is a voluntary request; values we do not know go
    tokens = flow.tokens(acr_values=acr_values, prompt="none")
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["acr"] == ACR_PASSWORD


def test_unknown_values_beside_a_known_one_leave_it_asked(flow: Flow) -> None:
    assert_step_up_redirect(flow.authorize(acr_values=f"urn:example:gold {ACR_MFA}"), ACR_MFA)


def test_a_voluntary_acr_left_unmet_after_step_up_issues_the_sessions_level(flow: Flow) -> None:
    # OIDC Core §5.5.1.1: voluntary; the ID token's acr says what the session proves, and
    # the person is not sent to the sign-in page again and again
    pkce = new_pkce()
    back = assert_step_up_redirect(flow.authorize(pkce, acr_values=ACR_MFA), ACR_MFA)
    answer = client_redirect(flow.http.get(back))
    tokens = flow.exchange(answer["code"], pkce.verifier).json()
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["acr"] == ACR_PASSWORD


def test_a_forged_step_up_mark_is_no_mark(flow: Flow) -> None:
    response = flow.authorize(acr_values=ACR_MFA, **{STEP_UP_MARK: "True:forged"})
    assert_step_up_redirect(response, ACR_MFA)


# --- the client's MFA requirement --------------------------------------------------------


def require_mfa(flow: Flow) -> None:
    Client.objects.filter(client_id=flow.rp.client_id).update(require_mfa=True)


def test_a_client_requiring_mfa_sends_a_password_session_to_step_up(flow: Flow, person) -> None:
    require_mfa(flow)
    pkce = new_pkce()
    back = assert_step_up_redirect(flow.authorize(pkce), ACR_MFA)
    step_up(person, ["otp"])
    answer = client_redirect(flow.http.get(back))
    tokens = flow.exchange(answer["code"], pkce.verifier).json()
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["acr"] == ACR_MFA


def test_a_client_requiring_mfa_refuses_a_session_left_below_it(flow: Flow) -> None:
    # OpenID Connect Core Error Code unmet_authentication_requirements 1.0 §2
    require_mfa(flow)
    back = assert_step_up_redirect(flow.authorize(), ACR_MFA)
    assert_error(flow.http.get(back), "unmet_authentication_requirements")


def test_a_client_requiring_mfa_with_prompt_none_is_login_required(flow: Flow) -> None:
    require_mfa(flow)
    assert_error(flow.authorize(prompt="none"), "login_required")


def test_a_client_requiring_mfa_takes_an_mfa_session_as_it_is(flow: Flow, person) -> None:
    require_mfa(flow)
    step_up(person, ["otp"])
    tokens = flow.tokens(prompt="none")
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["acr"] == ACR_MFA


def test_require_mfa_is_a_registration_setting(register) -> None:
    rp = register(require_mfa=True)
    assert Client.objects.get(client_id=rp.client_id).require_mfa
    assert not Client.objects.get(client_id=register().client_id).require_mfa
    call_command(
        "createclient", "--name", "MFA RP", "--redirect-uri", REDIRECT_URI, "--require-mfa",
        "--client-id", "mfa-rp", stdout=StringIO(),
    )  # fmt: skip
    assert Client.objects.get(client_id="mfa-rp").require_mfa


# --- max_age and auth_time ------------------------------------------------------------------


def test_max_age_zero_signs_in_again_and_auth_time_moves(flow: Flow, person) -> None:
    # OIDC Core §3.1.2.1: max_age=0 is prompt=login; the new ID token's auth_time is newer
    first = verify_id_token(flow.tokens()["id_token"], flow.rp.client_id)
    age(person, 120)
    pkce = new_pkce()
    to_login = flow.authorize(pkce, max_age="0")
    assert urlsplit(to_login["Location"]).path == "/login"
    next_url = query_of(to_login["Location"])["next"]
    signed = flow.http.post(
        "/login", {"email": person.email, "password": PASSWORD, "next": next_url}
    )
    assert signed.status_code == 302
    answer = client_redirect(flow.http.get(signed["Location"]))
    second = verify_id_token(
        flow.exchange(answer["code"], pkce.verifier).json()["id_token"], flow.rp.client_id
    )
    assert second["auth_time"] > first["auth_time"] - 120
    assert second["auth_time"] >= int(time.time()) - 5


def test_a_step_up_answers_max_age(flow: Flow, person) -> None:
    # OIDC Core §2 auth_time is the latest authentication; a second factor given now is one
    age(person, 600)
    step_up(person, ["otp"])
    tokens = flow.tokens(max_age="60", prompt="none")
    claims = verify_id_token(tokens["id_token"], flow.rp.client_id)
    assert claims["auth_time"] >= int(time.time()) - 5


# --- acr through the claims parameter (OIDC Core §5.5, §5.5.1.1) ----------------------------


def acr_claim(**request: object) -> str:
    return json.dumps({"id_token": {"acr": request}, "userinfo": {"email": None}})


def test_discovery_says_the_claims_parameter_is_accepted(client) -> None:
    metadata = client.get("/.well-known/openid-configuration").json()
    assert metadata["claims_parameter_supported"] is True


def test_an_essential_acr_is_returned_as_one_of_its_values(flow: Flow, person) -> None:
    # §5.5.1.1: essential with values: the ID token's acr is one of them (the strongest the
    # session satisfies, here a lower one than the session's own); the access token says
    # what the session proves
    step_up(person, ["otp"])
    tokens = flow.tokens(
        claims=acr_claim(essential=True, values=[ACR_PASSWORD, "urn:example:x"]), prompt="none"
    )
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["acr"] == ACR_PASSWORD
    assert validate_access_token(tokens["access_token"])["acr"] == ACR_MFA


def test_an_essential_acr_above_the_session_steps_up_then_is_met(flow: Flow, person) -> None:
    pkce = new_pkce()
    asked = flow.authorize(pkce, claims=acr_claim(essential=True, value=ACR_MFA))
    back = assert_step_up_redirect(asked, ACR_MFA)
    step_up(person, ["hwk"])
    answer = client_redirect(flow.http.get(back))
    tokens = flow.exchange(answer["code"], pkce.verifier).json()
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["acr"] == ACR_MFA


def test_an_essential_acr_left_unmet_is_refused(flow: Flow) -> None:
    # §5.5.1.1: an essential acr not met is a failed authentication
    back = assert_step_up_redirect(
        flow.authorize(claims=acr_claim(essential=True, values=[ACR_MFA])), ACR_MFA
    )
    assert_error(flow.http.get(back), "unmet_authentication_requirements")


def test_an_essential_acr_none_of_ours_is_refused_at_once(flow: Flow) -> None:
    response = flow.authorize(claims=acr_claim(essential=True, values=["urn:example:gold"]))
    assert_error(response, "unmet_authentication_requirements")


def test_a_voluntary_acr_claim_is_like_acr_values(flow: Flow) -> None:
    assert_step_up_redirect(flow.authorize(claims=acr_claim(values=[ACR_MFA])), ACR_MFA)
    tokens = flow.tokens(claims=acr_claim(essential=False), prompt="none")
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["acr"] == ACR_PASSWORD


@pytest.mark.parametrize(
    "claims",
    [
        "[]",
        '{"id_token": []}',
        '{"id_token": {"acr": "urn:tessera:acr:mfa"}}',
        '{"id_token": {"acr": {"essential": "yes"}}}',
        '{"id_token": {"acr": {"values": "urn:tessera:acr:mfa"}}}',
        '{"id_token": {"acr": {"values": [1]}}}',
        json.dumps({"userinfo": {"email": {"value": "x" * 5000}}}),
    ],
)
def test_a_malformed_claims_request_is_invalid_request(flow: Flow, claims: str) -> None:
    # §5.5: a JSON object of objects; never a 500
    assert_error(flow.authorize(method="post", claims=claims), "invalid_request")


@pytest.mark.parametrize("claims", ["not json", '{"id_token": ' * 2000 + "{}" + "}" * 2000])
def test_a_claims_request_that_is_not_json_is_refused(flow: Flow, claims: str) -> None:
    # oauthlib's OpenID Connect grant parses claims first, before it has checked the redirect
    # URI: the refusal page (RFC 6749 §4.1.2.1), never a 500
    response = flow.authorize(method="post", claims=claims)
    assert response.status_code == 400
    assert "Malformed claims parameter" in response.content.decode()
