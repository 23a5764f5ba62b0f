"""The token endpoint (django-oauth-toolkit's TokenView over apps/tokens/oauth_validator.py):
RFC 6749 §4.1.3, §4.4, §5, RFC 7636, RFC 9700 and the OpenID conformance basic plan."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone

from apps.core.models import SecurityEvent
from apps.tokens.models import Grant
from apps.tokens.validation import InvalidToken, validate_access_token
from tests.rp import PASSWORD, REDIRECT_URI, RegisteredClient
from tests.tokens.conftest import (
    TOKEN,
    Flow,
    basic,
    client_redirect,
    entropy_bits,
    form_post,
    new_pkce,
    unverified_payload,
    userinfo,
)

pytestmark = pytest.mark.django_db


def assert_oauth_error(response, error: str | set[str], status: int = 400) -> dict:
    """RFC 6749 §5.2: a JSON error object, not cached (§5.1)."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    expected = {error} if isinstance(error, str) else error
    assert body["error"] in expected, body
    assert "access_token" not in body
    assert response["Cache-Control"] == "no-store"
    return body


# --- authorization codes -------------------------------------------------------------------


def test_reused_code_is_invalid_grant_and_revokes_what_it_issued(flow: Flow) -> None:
    # RFC 6749 §4.1.2 (SHOULD revoke); RFC 9700 §4.5; oidcc-codereuse
    pkce = new_pkce()
    code = flow.code(pkce)
    issued = flow.exchange(code, pkce.verifier).json()
    assert userinfo(flow.http, issued["access_token"]).status_code == 200

    assert_oauth_error(flow.exchange(code, pkce.verifier), "invalid_grant")

    rejected = userinfo(flow.http, issued["access_token"])
    assert rejected.status_code == 401
    assert 'error="invalid_token"' in rejected["WWW-Authenticate"]
    assert_oauth_error(flow.refresh(issued["refresh_token"]), "invalid_grant")


def test_code_is_bound_to_the_client_it_was_issued_to(flow: Flow, register) -> None:
    # RFC 6749 §4.1.3: "ensure that the authorization code was issued to the authenticated
    # confidential client"
    pkce = new_pkce()
    code = flow.code(pkce)
    thief = register()
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier}  # fmt: skip
    assert_oauth_error(form_post(flow.http, TOKEN, data, auth=thief), "invalid_grant")
    assert flow.exchange(code, pkce.verifier).status_code == 200  # the owner still can


def test_expired_code_is_invalid_grant(flow: Flow) -> None:
    # RFC 6749 §4.1.2: short-lived codes (settings.AUTHORIZATION_CODE_LIFETIME)
    pkce = new_pkce()
    code = flow.code(pkce)
    Grant.objects.filter(code=code).update(expires=timezone.now())
    assert_oauth_error(flow.exchange(code, pkce.verifier), "invalid_grant")


def test_code_of_a_session_ended_before_the_exchange_is_invalid_grant(flow: Flow) -> None:
    # OIDC Core §3.1.3.2: the code must still belong to a live authentication
    from apps.sessions.services import session_end

    pkce = new_pkce()
    code = flow.code(pkce)
    session_end(session=Grant.objects.get(code=code).session, reason="logout")
    assert_oauth_error(flow.exchange(code, pkce.verifier), "invalid_grant")


def test_wrong_code_verifier_is_invalid_grant(flow: Flow) -> None:
    # RFC 7636 §4.6
    pkce = new_pkce()
    code = flow.code(pkce)
    assert_oauth_error(flow.exchange(code, new_pkce().verifier), "invalid_grant")


def test_code_verifier_equal_to_the_challenge_is_invalid_grant(flow: Flow) -> None:
    # RFC 7636 §4.6 / RFC 9700 §2.1.1: S256 only, so the challenge itself is no verifier
    pkce = new_pkce()
    code = flow.code(pkce)
    assert_oauth_error(flow.exchange(code, pkce.challenge), "invalid_grant")


def test_code_issued_with_a_challenge_needs_the_verifier(flow: Flow) -> None:
    # RFC 9700 §4.8.2 PKCE downgrade: a challenge was sent, so the verifier is required
    pkce = new_pkce()
    code = flow.code(pkce)
    assert_oauth_error(flow.exchange(code, None), {"invalid_request", "invalid_grant"})
    assert flow.exchange(code, pkce.verifier).status_code == 400  # and the code is spent


def test_code_without_a_challenge_refuses_a_verifier(flow: Flow, person) -> None:
    # RFC 9700 §4.8.2: a code_verifier for a code issued without code_challenge is refused
    from apps.sessions.models import LoginSession
    from apps.tokens.models import Client

    code = "c0de-without-challenge-5c8d1e"
    Grant.objects.create(
        application=Client.objects.get(client_id=flow.rp.client_id), user=person,
        session=LoginSession.objects.get(user=person), code=code, redirect_uri=REDIRECT_URI,
        expires=timezone.now() + timedelta(seconds=60), scope="openid", claims="{}",
    )  # fmt: skip
    response = flow.exchange(code, new_pkce().verifier)
    assert_oauth_error(response, {"invalid_request", "invalid_grant"})


def test_redirect_uri_different_from_the_authorization_request_is_invalid_grant(
    flow: Flow,
) -> None:
    # RFC 6749 §4.1.3 / §5.2: "does not match the redirection URI used in the authorization
    # request" is invalid_grant
    pkce = new_pkce()
    code = flow.code(pkce)
    response = flow.exchange(code, pkce.verifier, redirect_uri=REDIRECT_URI + "/other")
    assert_oauth_error(response, "invalid_grant")


def test_redirect_uri_different_from_the_authorization_request_issues_nothing(
    flow: Flow,
) -> None:
    # RFC 6749 §4.1.3: the values MUST be identical
    pkce = new_pkce()
    code = flow.code(pkce)
    response = flow.exchange(code, pkce.verifier, redirect_uri=REDIRECT_URI + "/other")
    assert response.status_code == 400
    assert "access_token" not in response.json()


def test_redirect_uri_omitted_at_the_token_endpoint_is_refused(flow: Flow) -> None:
    # RFC 6749 §4.1.3: redirect_uri is REQUIRED when the authorization request included it
    pkce = new_pkce()
    code = flow.code(pkce)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": pkce.verifier}
    response = form_post(flow.http, TOKEN, data, auth=flow.rp)
    assert_oauth_error(response, {"invalid_request", "invalid_grant"})


# --- client authentication (RFC 6749 §2.3.1, §5.2) ----------------------------------------


@pytest.mark.parametrize("auth_in", ["basic", "post"])
def test_wrong_client_secret_is_401_invalid_client(flow: Flow, auth_in: str) -> None:
    # RFC 6749 §5.2 invalid_client; oidcc-server-client-secret-post for the post variant
    pkce = new_pkce()
    code = flow.code(pkce)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier}  # fmt: skip
    wrong = (flow.rp.client_id, (flow.rp.client_secret or "") + "x")
    response = form_post(flow.http, TOKEN, data, auth=wrong, auth_in=auth_in)
    assert_oauth_error(response, "invalid_client", status=401)
    assert response["WWW-Authenticate"]
    assert flow.exchange(code, pkce.verifier).status_code == 200  # the code was not burnt


@pytest.mark.parametrize("auth_in", ["basic", "post"])
def test_unknown_client_is_401_invalid_client(client: HttpClient, auth_in: str) -> None:
    # RFC 6749 §5.2
    data = {"grant_type": "client_credentials"}
    response = form_post(client, TOKEN, data, auth=("no-such-client", "x" * 43), auth_in=auth_in)
    assert_oauth_error(response, "invalid_client", status=401)
    assert response["WWW-Authenticate"]


def test_confidential_client_without_credentials_is_401(client: HttpClient, rp) -> None:
    # RFC 6749 §3.2.1: confidential clients authenticate at the token endpoint
    data = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": rp.client_id}
    assert_oauth_error(form_post(client, TOKEN, data), "invalid_client", status=401)


def test_basic_auth_failure_challenges_with_the_basic_scheme(client: HttpClient, rp) -> None:
    # RFC 6749 §5.2: the WWW-Authenticate header must match the scheme the client used
    data = {"grant_type": "client_credentials"}
    response = form_post(client, TOKEN, data, auth=(rp.client_id, "wrong"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")


def test_client_secret_post_is_accepted(flow: Flow) -> None:
    # RFC 6749 §2.3.1; oidcc-server-client-secret-post
    pkce = new_pkce()
    data = {"grant_type": "authorization_code", "code": flow.code(pkce),
            "redirect_uri": REDIRECT_URI, "code_verifier": pkce.verifier}  # fmt: skip
    response = form_post(flow.http, TOKEN, data, auth=flow.rp, auth_in="post")
    assert response.status_code == 200
    assert response.json()["id_token"]


# --- refresh tokens ------------------------------------------------------------------------


def test_refresh_token_of_another_client_is_invalid_grant(flow: Flow, register) -> None:
    # RFC 6749 §6: the refresh token is bound to the client it was issued to
    refresh_token = flow.tokens()["refresh_token"]
    assert_oauth_error(flow.refresh(refresh_token, register()), "invalid_grant")
    assert flow.refresh(refresh_token).status_code == 200  # the owner still can


def test_client_without_refresh_grant_gets_no_refresh_token(signed_in: HttpClient, register):
    # RFC 6749 §5.1 (refresh_token OPTIONAL): only for clients registered for it
    rp = register(grant_types=["authorization_code"], skip_consent=True)
    tokens = Flow(signed_in, rp).tokens()
    assert tokens["access_token"]
    assert tokens["id_token"]
    assert "refresh_token" not in tokens


def test_refresh_grant_is_unauthorized_for_a_client_not_registered_for_it(
    flow: Flow, register
) -> None:
    # RFC 6749 §5.2 unauthorized_client
    rp = register(grant_types=["authorization_code"])
    assert_oauth_error(flow.refresh(flow.tokens()["refresh_token"], rp), "unauthorized_client")


def test_refresh_rotates_and_keeps_the_scope(flow: Flow) -> None:
    # RFC 9700 §4.14.2 rotation; oidcc-refresh-token
    first = flow.tokens()
    refreshed = flow.refresh(first["refresh_token"]).json()
    assert refreshed["refresh_token"] != first["refresh_token"]
    assert set(refreshed["scope"].split()) == set(first["scope"].split())
    assert userinfo(flow.http, refreshed["access_token"]).status_code == 200


def test_refresh_never_widens_the_scope(flow: Flow) -> None:
    # RFC 6749 §6: never more than originally granted. What is asked beyond it is dropped, as
    # at the authorization endpoint (OIDC Core §3.1.2.1): libraries resend the scope they
    # first asked for, including what was not granted.
    tokens = flow.tokens(scope="openid email")
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "scope": "openid email profile"}  # fmt: skip
    response = form_post(flow.http, TOKEN, data, auth=flow.rp)
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "openid email"
    assert "name" not in unverified_payload(response.json()["access_token"])


def test_refresh_asking_only_for_what_was_never_granted_is_invalid_scope(flow: Flow) -> None:
    # RFC 6749 §5.2 invalid_scope: "exceeds the scope granted by the resource owner"
    tokens = flow.tokens(scope="openid email")
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "scope": "profile"}  # fmt: skip
    response = form_post(flow.http, TOKEN, data, auth=flow.rp)
    assert_oauth_error(response, "invalid_scope")
    assert "granted" in response.json()["error_description"]
    assert flow.refresh(tokens["refresh_token"]).status_code == 200  # not spent by the error


# --- grant types ---------------------------------------------------------------------------


def test_password_grant_never_issues_tokens(client: HttpClient, rp, person) -> None:
    # RFC 9700 §2.4: the resource owner password credentials grant MUST NOT be used
    data = {"grant_type": "password", "username": person.email, "password": PASSWORD,
            "scope": "openid"}  # fmt: skip
    response = form_post(client, TOKEN, data, auth=rp)
    assert_oauth_error(response, {"unsupported_grant_type", "unauthorized_client"})


@pytest.mark.parametrize(
    "grant_type", ["implicit", "token", "urn:ietf:params:oauth:grant-type:jwt-bearer"]
)
def test_unknown_grant_types_are_unsupported(client: HttpClient, rp, grant_type: str) -> None:
    # RFC 9700 §2.1.2 (no implicit); RFC 6749 §5.2 unsupported_grant_type
    response = form_post(client, TOKEN, {"grant_type": grant_type}, auth=rp)
    assert_oauth_error(response, {"unsupported_grant_type", "unauthorized_client"})


@pytest.fixture
def machine(register) -> RegisteredClient:
    return register(grant_types=["client_credentials"], redirect_uris=[])


def test_client_credentials_issues_a_client_access_token_only(
    client: HttpClient, machine: RegisteredClient
) -> None:
    # RFC 6749 §4.4.3 (no refresh token); RFC 9068 §2.2 (sub is the client without a user)
    response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, auth=machine)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    tokens = response.json()
    assert "refresh_token" not in tokens
    assert "id_token" not in tokens
    assert jwt.get_unverified_header(tokens["access_token"])["typ"] == "at+jwt"
    claims = validate_access_token(tokens["access_token"])
    assert claims["sub"] == machine.client_id
    assert claims["client_id"] == machine.client_id
    assert claims["uid"] is None


def test_client_credentials_token_is_refused_at_userinfo(
    client: HttpClient, machine: RegisteredClient
) -> None:
    # OIDC Core §5.3.3 / RFC 6750 §3.1: no end-user behind it (and no openid scope),
    # insufficient_scope
    data = {"grant_type": "client_credentials"}
    token = form_post(client, TOKEN, data, auth=machine).json()["access_token"]
    response = userinfo(client, token)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_client_credentials_for_a_client_not_registered_for_it_is_unauthorized(
    client: HttpClient, rp
) -> None:
    # RFC 6749 §5.2 unauthorized_client
    response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, auth=rp)
    assert_oauth_error(response, "unauthorized_client")


@pytest.mark.parametrize("auth_in", ["basic", "post"])
def test_client_credentials_authenticates_by_basic_or_body(
    client: HttpClient, machine: RegisteredClient, auth_in: str
) -> None:
    # RFC 6749 §2.3.1: client_secret_basic and client_secret_post
    data = {"grant_type": "client_credentials"}
    response = form_post(client, TOKEN, data, auth=machine, auth_in=auth_in)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.ACCESS_TOKEN_LIFETIME
    assert response["Pragma"] == "no-cache"
    event = SecurityEvent.objects.get(event_type="token.issued", resource_id=machine.client_id)
    # the jti ties the record to the token (an auditor can follow one token from issue on)
    jti = unverified_payload(body["access_token"])["jti"]
    assert event.metadata == {"grant_type": "client_credentials", "scope": "", "jti": jti}


def test_client_credentials_without_scope_gets_none_and_never_openid(
    client: HttpClient, machine: RegisteredClient
) -> None:
    # RFC 6749 §3.3: the documented default of this grant is no scope; `openid` means a person
    # signed in (OIDC Core §3.1.2.1), which a service token must not claim.
    response = form_post(client, TOKEN, {"grant_type": "client_credentials"}, auth=machine)
    assert response.status_code == 200
    assert "scope" not in response.json()  # §5.1: nothing asked, nothing granted
    assert validate_access_token(response.json()["access_token"])["scope"] == ""
    for person_scope in ("openid", "profile", "email", "offline_access"):
        data = {"grant_type": "client_credentials", "scope": person_scope}
        refused = form_post(client, TOKEN, data, auth=machine)
        assert_oauth_error(refused, "invalid_scope")
        assert person_scope in refused.json()["error_description"]


def test_client_credentials_drops_the_scopes_it_may_not_have(client: HttpClient, register) -> None:
    # OIDC Core §3.1.2.1 / RFC 6749 §3.3: what may not be granted is dropped, and the
    # response's `scope` says what was granted.
    first_party = register(grant_types=["client_credentials"], redirect_uris=[], skip_consent=True)
    data = {"grant_type": "client_credentials", "scope": "openid admin unknown-scope"}
    response = form_post(client, TOKEN, data, auth=first_party)
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "admin"
    assert validate_access_token(response.json()["access_token"])["scope"] == "admin"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ([("grant_type", "client_credentials"), ("scope", "nope")], "invalid_scope"),
        ([("grant_type", "client_credentials"), ("grant_type", "client_credentials")],
         "invalid_request"),
        ([("grant_type", "client_credentials"), ("scope", "openid"), ("scope", "email")],
         "invalid_request"),
        ([("grant_type", "client_credentials"), ("resource", "/relative")], "invalid_target"),
        ([("grant_type", "client_credentials"), ("resource", "https://api.example/#f")],
         "invalid_target"),
        ([("grant_type", "client_credentials"), ("resource", "https://u:p@api.example/")],
         "invalid_target"),
    ],
)  # fmt: skip
def test_client_credentials_refuses_bad_parameters(
    client: HttpClient, machine: RegisteredClient, data: list[tuple[str, str]], error: str
) -> None:
    # RFC 6749 §3.2 (no repeated parameters), §3.3 / §5.2 invalid_scope; RFC 8707 §2
    # invalid_target for a resource that is not an absolute URI without a fragment
    assert_oauth_error(form_post(client, TOKEN, data, auth=machine), error)


def test_client_credentials_resources_become_the_audience(client: HttpClient, register) -> None:
    # RFC 8707 §2: the token is audience-restricted to the resources the client named (among
    # those it is registered for: tests/tokens/test_client_allowed_scopes.py)
    machine = register(
        grant_types=["client_credentials"], redirect_uris=[],
        allowed_resources=["https://a.example/api", "https://b.example/"],
    )  # fmt: skip
    data = [("grant_type", "client_credentials"), ("resource", "https://a.example/api"),
            ("resource", "https://b.example/")]  # fmt: skip
    token = form_post(client, TOKEN, data, auth=machine).json()["access_token"]
    claims = validate_access_token(token, any_audience=True)
    assert claims["aud"] == ["https://a.example/api", "https://b.example/"]
    with pytest.raises(InvalidToken):
        validate_access_token(token)  # not for the default audience


def test_client_credentials_with_a_secret_of_another_client_is_401(
    client: HttpClient, machine: RegisteredClient, register
) -> None:
    # RFC 6749 §5.2 invalid_client
    other = register(grant_types=["client_credentials"], redirect_uris=[])
    data = {"grant_type": "client_credentials"}
    response = form_post(client, TOKEN, data, auth=(machine.client_id, other.client_secret or ""))
    assert_oauth_error(response, "invalid_client", status=401)
    assert response["WWW-Authenticate"].startswith("Basic")


def test_public_client_cannot_use_client_credentials(client: HttpClient, register) -> None:
    # RFC 6749 §4.4: confidential clients only
    public = register(public=True)
    data = {"grant_type": "client_credentials", "client_id": public.client_id}
    response = form_post(client, TOKEN, data)
    assert response.status_code in (400, 401)
    assert "access_token" not in response.json()


# --- response headers ----------------------------------------------------------------------


def test_token_response_is_not_cached(flow: Flow) -> None:
    # RFC 6749 §5.1: Cache-Control: no-store (and Pragma: no-cache) on success
    pkce = new_pkce()
    response = flow.exchange(flow.code(pkce), pkce.verifier)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"
    assert response.json()["token_type"].lower() == "bearer"


def test_token_error_response_is_not_cached(flow: Flow) -> None:
    # RFC 6749 §5.2 with §5.1's caching rule
    response = flow.exchange("no-such-code", new_pkce().verifier)
    assert_oauth_error(response, "invalid_grant")


# --- entropy (RFC 6749 §10.10, RFC 9700 §4.1.3 / §2.1: ≥ 128 bits, unpredictable) ---------


def test_codes_access_tokens_and_refresh_tokens_have_128_bits_and_never_repeat(
    flow: Flow,
) -> None:
    # RFC 6749 §10.10: the probability of guessing a token MUST be ≤ 2^-128
    codes, jtis, refresh_tokens = [], [], []
    for _ in range(50):
        pkce = new_pkce()
        code = flow.code(pkce)
        tokens = flow.exchange(code, pkce.verifier).json()
        codes.append(code)
        jtis.append(unverified_payload(tokens["access_token"])["jti"])
        refresh_tokens.append(tokens["refresh_token"])
    for name, values in (("code", codes), ("jti", jtis), ("refresh_token", refresh_tokens)):
        assert len(set(values)) == 50, name
        assert min(entropy_bits(value) for value in values) >= 128, (name, values[0])


# --- malformed requests: 400 with an OAuth error, never a 500 ----------------------------


def _raw(
    http: HttpClient, rp, body: bytes, content_type: str = "application/x-www-form-urlencoded"
):
    headers = {"Authorization": basic(rp.client_id, rp.client_secret)}
    return http.generic("POST", TOKEN, body, content_type=content_type, headers=headers)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"code=abc&redirect_uri=https%3A%2F%2Frp.example.com%2Fcallback",  # no grant_type
        b"%%%&&&==\x01\x02garbage",
        b"grant_type=authorization_code&code=" + b"A" * 100_000,  # 100 KB parameter
        b"grant_type=refresh_token&refresh_token=" + b"A" * 100_000,
        b"grant_type=authorization_code&code=\xff\xfe\xfa&redirect_uri=\xc3\x28",  # not UTF-8
        b"grant_type=authorization_code&grant_type=refresh_token&code=x",  # repeated
        b"grant_type=" + b"A" * 100_000,
    ],
    ids=[
        "empty",
        "no-grant-type",
        "garbage",
        "100k-code",
        "100k-refresh",
        "non-utf8",
        "repeated",
        "100k-grant-type",
    ],
)
def test_malformed_body_is_400_with_an_oauth_error(lenient_client: HttpClient, rp, body):
    # RFC 6749 §5.2
    response = _raw(lenient_client, rp, body)
    assert_oauth_error(response, {"invalid_request", "invalid_grant", "unsupported_grant_type"})


def test_json_body_is_400_with_an_oauth_error(lenient_client: HttpClient, rp) -> None:
    # RFC 6749 §4.1.3: application/x-www-form-urlencoded only
    response = _raw(lenient_client, rp, b'{"grant_type": "client_credentials"}', "application/json")
    assert_oauth_error(response, {"invalid_request", "unsupported_grant_type"})


@pytest.mark.parametrize(
    "authorization",
    ["Basic !!!***", "Basic " + "QQ==" * 30_000, "Basic //79", "Bearer abc", "Basic"],
)
def test_malformed_basic_credentials_are_401_invalid_client(
    lenient_client: HttpClient, authorization: str
) -> None:
    # RFC 6749 §2.3.1, §5.2
    response = lenient_client.post(
        TOKEN, "grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded", headers={"Authorization": authorization},
    )  # fmt: skip
    assert_oauth_error(response, "invalid_client", status=401)


@pytest.mark.parametrize(
    ("field", "grant_type"),
    [("code", "authorization_code"), ("refresh_token", "refresh_token"),
     ("code_verifier", "authorization_code"), ("redirect_uri", "authorization_code")],
)  # fmt: skip
def test_nul_byte_in_a_body_parameter_is_400(lenient_client, rp, field: str, grant_type: str):
    # RFC 6749 §5.2: a malformed request is invalid_request/invalid_grant, never a 500
    data = {"grant_type": grant_type, "redirect_uri": REDIRECT_URI, "code": "abc",
            "refresh_token": "abc", "code_verifier": "v" * 43}  # fmt: skip
    data[field] = "abc\x00def"
    response = form_post(lenient_client, TOKEN, data, auth=rp)
    assert_oauth_error(response, {"invalid_request", "invalid_grant"})


@pytest.mark.parametrize("auth_in", ["basic", "post"])
def test_nul_byte_in_the_client_id_is_invalid_request(
    lenient_client: HttpClient, auth_in: str
) -> None:
    # RFC 6749 §5.2 invalid_request (a malformed parameter value), never a 500
    data = {"grant_type": "client_credentials"}
    response = form_post(lenient_client, TOKEN, data, auth=("abc\x00def", "x"), auth_in=auth_in)
    assert_oauth_error(response, "invalid_request", status=400)


def test_authorization_code_issuance_is_refused_over_get(flow: Flow) -> None:
    # RFC 6749 §3.2: the client MUST use POST
    pkce = new_pkce()
    answer = client_redirect(flow.authorize(pkce))
    response = flow.http.get(
        TOKEN,
        {"grant_type": "authorization_code", "code": answer["code"],
         "redirect_uri": REDIRECT_URI, "code_verifier": pkce.verifier},
        headers={"Authorization": basic(flow.rp.client_id, flow.rp.client_secret or "")},
    )  # fmt: skip
    assert response.status_code == 405
    assert flow.exchange(answer["code"], pkce.verifier).status_code == 200


def test_token_endpoint_uses_the_configured_issuer(flow: Flow) -> None:
    # RFC 9068 §2.2 iss; OIDC Core §2 iss equals the issuer identifier
    tokens = flow.tokens()
    assert unverified_payload(tokens["access_token"])["iss"] == settings.ISSUER
    assert unverified_payload(tokens["id_token"])["iss"] == settings.ISSUER
