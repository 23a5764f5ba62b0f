"""The authorization endpoint (apps/tokens/authorize.py): RFC 6749 §4.1, OIDC Core §3.1.2,
RFC 7636 / RFC 9700 PKCE, RFC 9207 `iss`, and the OpenID conformance basic-plan modules."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from django.conf import settings
from django.test import Client as HttpClient

from apps.accounts.services import user_create
from apps.sessions.models import LoginSession
from apps.tokens.claims import sign
from apps.tokens.models import Consent, Grant
from tests.rp import PASSWORD, REDIRECT_URI, RegisteredClient
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import (
    AUTHORIZE,
    SCOPE,
    STATE,
    TOKEN,
    Flow,
    authorize_params,
    client_redirect,
    forged_id_token_hints,
    new_pkce,
    query_of,
    unsigned_token,
    verify_id_token,
)

pytestmark = pytest.mark.django_db


def assert_error_page(response) -> None:
    """RFC 6749 §4.1.2.1: with an unknown client or redirect URI, tell the person; never
    redirect to an unverified URI."""
    assert response.status_code == 400
    assert "Location" not in response
    assert response["Content-Type"].startswith("text/html")
    assert "This sign-in request was refused" in response.content.decode()


def assert_error_redirect(response, error: str) -> dict[str, str]:
    """RFC 6749 §4.1.2.1 error response, with state echoed and RFC 9207 §2 `iss`."""
    answer = client_redirect(response)
    assert answer["error"] == error, answer
    assert answer["state"] == STATE
    assert answer["iss"] == settings.ISSUER
    assert "code" not in answer
    return answer


def id_token_for(user_pk, client_id: str) -> str:
    """An ID token as we issue them (OIDC Core §2), signed by our RS256 key."""
    now = int(time.time())
    claims = {
        "iss": settings.ISSUER,
        "sub": str(user_pk),
        "aud": client_id,
        "iat": now,
        "exp": now + 3600,
        "jti": "hint-jti",
    }
    return sign(claims, alg="RS256", typ="JWT")


# --- client and redirect URI: an error page, never a redirect -----------------------------


def test_unknown_client_id_gets_an_error_page_and_no_redirect(signed_in: HttpClient) -> None:
    # RFC 6749 §4.1.2.1: the client is unknown, so is where to send the error
    params = authorize_params("no-such-client", new_pkce())
    assert_error_page(signed_in.get(AUTHORIZE, params))


def test_missing_client_id_gets_an_error_page(signed_in: HttpClient) -> None:
    # RFC 6749 §4.1.2.1: the client cannot be identified
    params = authorize_params("x", new_pkce())
    del params["client_id"]
    assert_error_page(signed_in.get(AUTHORIZE, params))


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT_URI + "/extra",  # extra path
        REDIRECT_URI + "?next=/admin",  # extra query
        "https://rp.example.com:8443/callback",  # different port
        REDIRECT_URI + "/",  # trailing slash
        "http://rp.example.com/callback",  # downgraded scheme
        "https://rp.example.com.evil.example/callback",  # suffix host
        "https://evil.example/callback",
        REDIRECT_URI + "#fragment",  # RFC 6749 §3.1.2: no fragment
        "/callback",  # relative
    ],
)
def test_redirect_uri_not_registered_exactly_gets_an_error_page(
    flow: Flow, redirect_uri: str
) -> None:
    # RFC 9700 §4.1.3 exact string matching; RFC 6749 §3.1.2.3, §4.1.2.1;
    # oidcc-ensure-registered-redirect-uri
    assert_error_page(flow.authorize(redirect_uri=redirect_uri))


def test_missing_redirect_uri_gets_an_error_page(flow: Flow) -> None:
    # OIDC Core §3.1.2.1: redirect_uri is REQUIRED;
    # oidcc-ensure-redirect-uri-in-authorization-request expects an error, not a redirect
    assert_error_page(flow.authorize(redirect_uri=None))


def test_client_without_authorization_code_grant_is_refused(
    signed_in: HttpClient, register
) -> None:
    # RFC 6749 §4.1.2.1 unauthorized_client; a client_credentials client has no redirect URI
    machine = register(grant_types=["client_credentials"], redirect_uris=[])
    response = signed_in.get(AUTHORIZE, authorize_params(machine.client_id, new_pkce()))
    assert response.status_code == 400
    assert "Location" not in response


# --- PKCE (RFC 7636, RFC 9700 §2.1.1) -----------------------------------------------------


def test_missing_code_challenge_is_invalid_request(flow: Flow) -> None:
    # RFC 9700 §2.1.1: PKCE required; RFC 7636 §4.4.1
    params = authorize_params(flow.rp.client_id, None)
    answer = assert_error_redirect(flow.http.get(AUTHORIZE, params), "invalid_request")
    assert not Grant.objects.filter(application__client_id=flow.rp.client_id).exists()
    assert answer["error_description"]


def test_plain_code_challenge_method_is_invalid_request(flow: Flow) -> None:
    # RFC 9700 §2.1.1: S256 only
    assert_error_redirect(flow.authorize(code_challenge_method="plain"), "invalid_request")


def test_missing_code_challenge_method_means_plain_and_is_refused(flow: Flow) -> None:
    # RFC 7636 §4.3: absent method defaults to "plain"; RFC 9700 §2.1.1
    assert_error_redirect(flow.authorize(code_challenge_method=None), "invalid_request")


def test_unknown_code_challenge_method_is_refused(flow: Flow) -> None:
    # RFC 7636 §4.4.1
    response = flow.authorize(code_challenge_method="S512")
    assert "code" not in client_redirect(response)


# --- response types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "response_type", ["token", "id_token", "id_token token", "code id_token", "code token"]
)
def test_implicit_and_hybrid_response_types_are_refused_without_tokens(
    flow: Flow, response_type: str
) -> None:
    # RFC 9700 §2.1.2: no implicit grant; OIDC Core §3.2, §3.3 not offered
    response = flow.authorize(response_type=response_type)
    location = response["Location"]
    assert "access_token" not in location
    assert "id_token=" not in location
    assert "code=" not in location
    assert client_redirect(response)["error"]


@pytest.mark.parametrize("response_type", ["token", "id_token"])
def test_implicit_response_type_is_unsupported_response_type(
    flow: Flow, response_type: str
) -> None:
    # RFC 6749 §4.1.2.1 / §4.2.2.1: the server does not support this response type at all
    # (discovery: response_types_supported == ["code"]), so unsupported_response_type
    assert_error_redirect(flow.authorize(response_type=response_type), "unsupported_response_type")


def test_missing_response_type_is_invalid_request(flow: Flow) -> None:
    # oidcc-response-type-missing; RFC 6749 §4.1.1
    assert_error_redirect(flow.authorize(response_type=None), "invalid_request")


def test_duplicate_parameter_is_refused(flow: Flow) -> None:
    # RFC 6749 §3.1: request parameters MUST NOT be included more than once
    params = [*authorize_params(flow.rp.client_id, new_pkce()).items(), ("state", "two")]
    response = flow.http.get(f"{AUTHORIZE}?{urlencode(params)}")
    if response.status_code == 302:
        answer = query_of(response["Location"])
        assert "code" not in answer, answer
        assert answer["error"] == "invalid_request"
    else:
        assert_error_page(response)


# --- prompt (OIDC Core §3.1.2.1) -----------------------------------------------------------


def test_prompt_none_when_signed_out_is_login_required(client: HttpClient, rp) -> None:
    # oidcc-prompt-none-not-logged-in
    response = Flow(client, rp).authorize(prompt="none")
    assert_error_redirect(response, "login_required")


def test_prompt_none_without_consent_is_consent_required(signed_in: HttpClient, rp) -> None:
    # OIDC Core §3.1.2.6 consent_required
    response = Flow(signed_in, rp).authorize(prompt="none")
    assert_error_redirect(response, "consent_required")


def test_prompt_none_signed_in_with_consent_issues_a_code(flow: Flow) -> None:
    # oidcc-prompt-none-logged-in
    answer = client_redirect(flow.authorize(prompt="none"))
    assert answer["code"]
    assert answer["state"] == STATE
    assert answer["iss"] == settings.ISSUER


@pytest.mark.parametrize("prompt", ["none login", "none consent", "consent none"])
def test_prompt_none_with_other_values_is_invalid_request(flow: Flow, prompt: str) -> None:
    # OIDC Core §3.1.2.1: none with any other value is an error
    assert_error_redirect(flow.authorize(prompt=prompt), "invalid_request")


def test_prompt_login_when_signed_in_shows_the_login_form(flow: Flow) -> None:
    # oidcc-prompt-login (the full browser flow: test_prompt_login_signs_in_again_then_completes)
    response = flow.authorize(prompt="login")
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/login"


def test_prompt_login_completes_after_a_new_sign_in(flow: Flow, person) -> None:
    # oidcc-prompt-login: the form, then a code once the person signed in again
    first = flow.tokens()
    pkce = new_pkce()
    to_login = flow.authorize(pkce, prompt="login")
    next_url = query_of(to_login["Location"])["next"]
    signed = flow.http.post(
        "/login", {"email": person.email, "password": PASSWORD, "next": next_url}
    )
    assert signed.status_code == 302
    answer = client_redirect(flow.http.get(signed["Location"]))
    second = flow.exchange(answer["code"], pkce.verifier).json()
    first_sid = verify_id_token(first["id_token"], flow.rp.client_id)["sid"]
    second_sid = verify_id_token(second["id_token"], flow.rp.client_id)["sid"]
    assert first_sid != second_sid


def test_prompt_consent_shows_consent_even_when_remembered(flow: Flow) -> None:
    # OIDC Core §3.1.2.1 prompt=consent
    assert client_redirect(flow.authorize())["code"]  # remembered: no page
    response = flow.authorize(prompt="consent")
    assert response.status_code == 200
    assert "tokens/consent.html" in [t.name for t in response.templates]


def test_unknown_prompt_value_is_invalid_request(flow: Flow) -> None:
    # OIDC Core §3.1.2.1 lists the defined values
    assert_error_redirect(flow.authorize(prompt="bogus"), "invalid_request")


# --- max_age (OIDC Core §3.1.2.1) ----------------------------------------------------------


def _age_login_session(user, seconds: int) -> None:
    login_at = LoginSession.objects.get(user=user).created_at - timedelta(seconds=seconds)
    # auth_time (OIDC Core §2) is the session's latest authentication: its login here
    LoginSession.objects.filter(user=user).update(created_at=login_at, authenticated_at=login_at)


def test_max_age_shorter_than_the_login_age_shows_the_login_form(flow: Flow, person) -> None:
    # oidcc-max-age-1
    _age_login_session(person, 10)
    response = flow.authorize(max_age="1")
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/login"


def test_max_age_zero_shows_the_login_form(flow: Flow) -> None:
    # OIDC Core §3.1.2.1: max_age=0 is equivalent to prompt=login
    response = flow.authorize(max_age="0")
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/login"


def test_max_age_longer_than_the_login_age_issues_a_code(flow: Flow, person) -> None:
    # oidcc-max-age-10000; the ID token carries auth_time (OIDC Core §2)
    _age_login_session(person, 10)
    tokens = flow.tokens(max_age="10000")
    claims = verify_id_token(tokens["id_token"], flow.rp.client_id)
    assert time.time() - 15 < claims["auth_time"] <= time.time() - 9


def test_max_age_with_prompt_none_and_an_old_login_is_login_required(flow: Flow, person) -> None:
    # OIDC Core §3.1.2.1 prompt=none: no UI, so the error
    _age_login_session(person, 10)
    assert_error_redirect(flow.authorize(max_age="1", prompt="none"), "login_required")


@pytest.mark.parametrize("max_age", ["-1", "abc", "1e3", "9" * 20])
def test_malformed_max_age_is_invalid_request(flow: Flow, max_age: str) -> None:
    # OIDC Core §3.1.2.1: max_age is a non-negative integer
    assert_error_redirect(flow.authorize(max_age=max_age), "invalid_request")


# --- login_hint and id_token_hint ----------------------------------------------------------


def test_login_hint_prefills_the_email_field(client: HttpClient, rp) -> None:
    # oidcc-login-hint; OIDC Core §3.1.2.1
    response = Flow(client, rp).authorize(login_hint="grace@example.com")
    assert urlsplit(response["Location"]).path == "/login"
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert 'value="grace@example.com"' in page.content.decode()


def test_login_hint_is_escaped_on_the_login_page(client: HttpClient, rp) -> None:
    # OWASP ASVS 5.3.3: output encoding of a parameter the relying party controls
    response = Flow(client, rp).authorize(login_hint='"><script>alert(1)</script>')
    page = client.get(response["Location"]).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&quot;&gt;&lt;script&gt;" in page


def test_id_token_hint_of_the_signed_in_user_with_prompt_none_issues_a_code(flow: Flow) -> None:
    # oidcc-id-token-hint: the hint from a previous login, prompt=none, same user
    hint = flow.tokens()["id_token"]
    answer = client_redirect(flow.authorize(prompt="none", id_token_hint=hint))
    assert answer["code"]


def test_expired_id_token_hint_is_still_a_hint(flow: Flow, person) -> None:
    # apps/tokens/id_tokens.py contract; RP-Initiated Logout 1.0 §2 accepts expired hints too
    now = int(time.time())
    claims = {"iss": settings.ISSUER, "sub": str(person.pk), "aud": flow.rp.client_id,
              "iat": now - 7200, "exp": now - 3600}  # fmt: skip
    hint = sign(claims, alg="RS256", typ="JWT")
    assert client_redirect(flow.authorize(prompt="none", id_token_hint=hint))["code"]


def test_id_token_hint_of_another_user_asks_to_sign_in_again(flow: Flow) -> None:
    # OIDC Core §3.1.2.1 id_token_hint: the signed-in user is not the hinted one
    other = user_create(email="grace@example.com", password=PASSWORD)
    response = flow.authorize(id_token_hint=id_token_for(other.pk, flow.rp.client_id))
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/login"


def test_id_token_hint_of_another_user_with_prompt_none_is_login_required(flow: Flow) -> None:
    # OIDC Core §3.1.2.6 login_required
    other = user_create(email="grace@example.com", password=PASSWORD)
    hint = id_token_for(other.pk, flow.rp.client_id)
    assert_error_redirect(flow.authorize(prompt="none", id_token_hint=hint), "login_required")


def test_forged_id_token_hint_is_invalid_request(flow: Flow, person) -> None:
    # RFC 8725 §2.1, §3.1 (alg none, algorithm confusion); OIDC Core §3.1.2.1
    for name, hint in forged_id_token_hints(person.pk, flow.rp.client_id):
        response = flow.authorize(id_token_hint=hint)
        answer = assert_error_redirect(response, "invalid_request")
        assert "id_token_hint" in answer["error_description"], name


def test_forged_id_token_hint_is_refused_before_login(client: HttpClient, rp, person) -> None:
    # RFC 8725 §3.1: a forged hint never reaches the login page either
    _, hint = forged_id_token_hints(person.pk, rp.client_id)[0]
    response = Flow(client, rp).authorize(id_token_hint=hint, prompt="none")
    assert_error_redirect(response, "invalid_request")


def test_access_token_is_no_id_token_hint(flow: Flow) -> None:
    # RFC 8725 §3.11 explicit typing: an at+jwt is not an ID token
    access_token = flow.tokens()["access_token"]
    assert_error_redirect(flow.authorize(id_token_hint=access_token), "invalid_request")


# --- the ID token the code leads to --------------------------------------------------------


def test_nonce_comes_back_in_the_id_token(flow: Flow) -> None:
    # OIDC Core §3.1.3.7 step 11; oidcc-server checks it
    tokens = flow.tokens(nonce="n-unique-41f0")
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["nonce"] == "n-unique-41f0"


def test_request_without_nonce_succeeds_and_has_no_nonce(flow: Flow) -> None:
    # oidcc-ensure-request-without-nonce-succeeds-for-code-flow (OIDC Core §3.1.2.1)
    tokens = flow.tokens(nonce=None)
    assert "nonce" not in verify_id_token(tokens["id_token"], flow.rp.client_id)


def test_id_token_carries_acr_auth_time_and_sid(flow: Flow, client: HttpClient) -> None:
    # OIDC Core §2 acr / auth_time; oidcc-ensure-request-with-acr-values-succeeds
    tokens = flow.tokens(acr_values="urn:tessera:acr:pwd")
    claims = verify_id_token(tokens["id_token"], flow.rp.client_id)
    metadata = client.get("/.well-known/openid-configuration").json()
    assert claims["acr"] in metadata["acr_values_supported"]
    assert claims["auth_time"] <= time.time()
    assert claims["sid"]


@pytest.mark.parametrize(
    "extra",
    [
        {"unknown_param": "ignored"},  # oidcc-ensure-request-with-unknown-parameter-succeeds
        {"ui_locales": "se"},  # oidcc-ui-locales
        {"claims_locales": "se"},  # oidcc-claims-locales
        {"display": "page"},  # oidcc-display-page
        {"display": "popup"},  # oidcc-display-popup
        {"scope": "email openid"},  # oidcc-ensure-other-scope-order-succeeds
        {"claims": '{"id_token":{"email":{"essential":true}}}'},  # oidcc-claims-essential
    ],
)
def test_optional_and_unknown_parameters_do_not_break_the_flow(flow: Flow, extra) -> None:
    # RFC 6749 §3.1: unrecognized parameters are ignored
    tokens = flow.tokens(**extra)
    assert verify_id_token(tokens["id_token"], flow.rp.client_id)["sub"]


@pytest.mark.parametrize(
    ("parameter", "error"),
    [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")],
)
def test_request_objects_are_refused_when_not_supported(
    flow: Flow, parameter: str, error: str
) -> None:
    # OIDC Core §6.1 / §6.2: an OP that does not support the parameter MUST return the error
    # (discovery says request_parameter_supported / request_uri_parameter_supported false)
    value = (
        unsigned_token({"alg": "none"}, {"client_id": flow.rp.client_id, "scope": "openid"})
        if parameter == "request"
        else "https://rp.example.com/request.jwt"
    )
    assert_error_redirect(flow.authorize(**{parameter: value}), error)


# --- consent -------------------------------------------------------------------------------


def _approve(http: HttpClient, page, decision: str = "allow"):
    assert page.status_code == 200
    assert "tokens/consent.html" in [t.name for t in page.templates]
    blob = page.context["request_blob"]
    return http.post("/oauth/authorize/consent", {"request": blob, "decision": decision})


def test_consent_is_remembered_per_user_and_client(
    signed_in: HttpClient, rp: RegisteredClient, register, person
) -> None:
    # OIDC Core §3.1.2.4: the OP may remember a consent; scoped to this user and client
    first = Flow(signed_in, rp)
    assert client_redirect(_approve(signed_in, first.authorize()))["code"]
    assert client_redirect(first.authorize())["code"]  # remembered: no page
    assert Consent.objects.filter(user=person).count() == 1

    other_client = Flow(signed_in, register())
    assert other_client.authorize().status_code == 200  # asks again for another client

    someone_else = HttpClient()
    force_sign_in(someone_else, user_create(email="grace@example.com", password=PASSWORD))
    assert Flow(someone_else, rp).authorize().status_code == 200  # and for another user


def test_consent_for_fewer_scopes_does_not_cover_more(signed_in: HttpClient, rp) -> None:
    # OIDC Core §3.1.2.4: consent covers what was shown
    flow = Flow(signed_in, rp)
    assert client_redirect(_approve(signed_in, flow.authorize(scope="openid")))["code"]
    assert flow.authorize(scope="openid email").status_code == 200


def test_denied_consent_is_access_denied(signed_in: HttpClient, rp, person) -> None:
    # RFC 6749 §4.1.2.1 access_denied, with state and iss (RFC 9207)
    flow = Flow(signed_in, rp)
    assert_error_redirect(_approve(signed_in, flow.authorize(), "deny"), "access_denied")
    assert not Consent.objects.filter(user=person).exists()


def test_tampered_consent_form_issues_nothing(signed_in: HttpClient, rp) -> None:
    # OWASP ASVS 4.1.3 (server-side state): the consent blob is signed
    page = Flow(signed_in, rp).authorize()
    blob = page.context["request_blob"]
    response = signed_in.post(
        "/oauth/authorize/consent", {"request": blob[:-2] + "xx", "decision": "allow"}
    )
    assert response.status_code == 400
    assert "Location" not in response


def test_first_party_client_never_shows_consent(signed_in: HttpClient, register) -> None:
    # skip_consent (first party): no page, and prompt=none is not consent_required
    first_party = Flow(signed_in, register(skip_consent=True))
    assert client_redirect(first_party.authorize())["code"]
    assert client_redirect(first_party.authorize(prompt="none"))["code"]


# --- POST (OIDC Core §3.1.2.1) -------------------------------------------------------------


def test_authorization_request_by_form_post_issues_a_code(flow: Flow) -> None:
    # OIDC Core §3.1.2.1: GET and POST; oidcc-ensure-post-request-succeeds
    pkce = new_pkce()
    answer = client_redirect(flow.authorize(pkce, method="post"))
    assert answer["state"] == STATE
    assert answer["iss"] == settings.ISSUER
    assert flow.exchange(answer["code"], pkce.verifier).status_code == 200


def test_authorization_post_with_errors_redirects_like_get(flow: Flow) -> None:
    # OIDC Core §3.1.2.1
    response = flow.authorize(method="post", code_challenge_method="plain")
    assert_error_redirect(response, "invalid_request")


# --- robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["client_id", "redirect_uri", "id_token_hint", "login_hint"])
def test_nul_byte_in_a_parameter_is_a_client_error(
    lenient_client: HttpClient, rp, person, field: str
) -> None:
    # RFC 6749 §4.1.2.1: a malformed request is answered, never a 500
    force_sign_in(lenient_client, person)
    params = authorize_params(rp.client_id, new_pkce())
    params[field] = "abc\x00def"
    response = lenient_client.get(AUTHORIZE, params)
    assert response.status_code < 500, response.status_code


# --- full browser flows on the live server -------------------------------------------------


def _live_authorize_url(live_server, rp: RegisteredClient, pkce, **extra) -> str:
    params = authorize_params(rp.client_id, pkce, **extra)
    return f"{live_server.url}{AUTHORIZE}?{urlencode(params)}"


def _live_tokens(live_server, rp: RegisteredClient, response, pkce) -> dict:
    assert response.is_redirect, (response.status_code, response.text[:500])
    answer = query_of(response.headers["Location"])
    assert answer["iss"] == live_server.url
    exchanged = requests.post(
        f"{live_server.url}{TOKEN}",
        data={"grant_type": "authorization_code", "code": answer["code"],
              "redirect_uri": REDIRECT_URI, "code_verifier": pkce.verifier},
        auth=(rp.client_id, rp.client_secret), timeout=10,
    )  # fmt: skip
    assert exchanged.status_code == 200, exchanged.text
    return exchanged.json()


@pytest.mark.django_db(transaction=True)
def test_prompt_login_signs_in_again_then_completes(live_server, hosted_pages, person, rp):
    # oidcc-prompt-login: a signed-in person sees the form again, then the RP gets a code
    pkce = new_pkce()
    first = _live_tokens(
        live_server, rp, hosted_pages.visit(_live_authorize_url(live_server, rp, pkce)), pkce
    )
    pkce = new_pkce()
    url = _live_authorize_url(live_server, rp, pkce, prompt="login")
    shown = hosted_pages.http.get(url, allow_redirects=False, timeout=10)
    assert urlsplit(shown.headers["Location"]).path == "/login"
    second = _live_tokens(live_server, rp, hosted_pages.visit(url), pkce)
    assert LoginSession.objects.filter(user=person).count() == 2
    sids = {verify_id_token(t["id_token"], rp.client_id)["sid"] for t in (first, second)}
    assert len(sids) == 2


@pytest.mark.django_db(transaction=True)
def test_max_age_with_an_older_login_signs_in_again(live_server, hosted_pages, person, rp):
    # oidcc-max-age-1: an older login is re-authenticated, then the flow completes
    pkce = new_pkce()
    _live_tokens(
        live_server, rp, hosted_pages.visit(_live_authorize_url(live_server, rp, pkce)), pkce
    )
    _age_login_session(person, 10)
    pkce = new_pkce()
    tokens = _live_tokens(
        live_server,
        rp,
        hosted_pages.visit(_live_authorize_url(live_server, rp, pkce, max_age="5")),
        pkce,
    )
    assert LoginSession.objects.filter(user=person).count() == 2
    auth_time = verify_id_token(tokens["id_token"], rp.client_id)["auth_time"]
    assert auth_time >= time.time() - 5


@pytest.mark.django_db(transaction=True)
def test_max_age_zero_signs_in_again_then_completes(live_server, hosted_pages, person, rp):
    # OIDC Core §3.1.2.1: "max_age=0 is equivalent to prompt=login" — one new sign-in,
    # then a code (not the login form forever)
    pkce = new_pkce()
    _live_tokens(
        live_server, rp, hosted_pages.visit(_live_authorize_url(live_server, rp, pkce)), pkce
    )
    pkce = new_pkce()
    url = _live_authorize_url(live_server, rp, pkce, max_age="0")
    _live_tokens(live_server, rp, hosted_pages.visit(url), pkce)
    assert LoginSession.objects.filter(user=person).count() == 2


@pytest.mark.django_db(transaction=True)
def test_consent_page_is_shown_once_then_remembered(live_server, hosted_pages, person, rp):
    # OIDC Core §3.1.2.4: the second authorization of the same client skips the page
    pkce = new_pkce()
    url = _live_authorize_url(live_server, rp, pkce)
    _live_tokens(live_server, rp, hosted_pages.visit(url), pkce)
    pkce = new_pkce()
    url = _live_authorize_url(live_server, rp, pkce, scope=SCOPE)
    again = hosted_pages.http.get(url, allow_redirects=False, timeout=10)
    assert again.is_redirect
    assert again.headers["Location"].startswith(REDIRECT_URI)
    _live_tokens(live_server, rp, again, pkce)
