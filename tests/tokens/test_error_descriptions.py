"""Every error response, redirect and JSON, carries a non-empty, useful error_description.

RFC 6749 §4.1.2.1 and §5.2 (and RFC 6750 §3, RFC 7009 §2.2.1, RFC 7662 §2.3, OIDC Core
§3.1.2.6) make error_description OPTIONAL "human-readable ASCII text providing additional
information, used to assist the client developer in understanding the error that occurred";
apps/tokens/errors.py promises it on every answer. One sweep drives each error path we can
reach through the HTTP interface and checks the status the RFC names, the `error` code, and a
description that says more than the code does. Nothing answers 500 (RFC 6749 §5.2).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone

from apps.tokens.models import Client, Grant
from apps.tokens.services import consent_grant
from tests.rp import PASSWORD, REDIRECT_URI, RegisteredClient
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import (
    AUTHORIZE,
    INTROSPECT,
    SCOPE,
    STATE,
    TOKEN,
    USERINFO,
    Flow,
    basic,
    form_post,
    new_pkce,
    query_of,
)

pytestmark = pytest.mark.django_db

REVOKE = "/oauth/revoke"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class Ctx:
    """What an error path needs: a browser signed in as `person` who allowed `rp`, a browser
    nobody signed in to, and the registration of more clients. Both browsers answer a 500 as
    a response (raise_request_exception=False), so a crash shows as its status code."""

    http: HttpClient
    anonymous: HttpClient
    rp: RegisteredClient
    register: Callable[..., RegisteredClient]
    person: Any

    @property
    def flow(self) -> Flow:
        return Flow(self.http, self.rp)

    def code(self) -> tuple[str, str]:
        """A fresh authorization code of `rp` and its code_verifier."""
        pkce = new_pkce()
        return self.flow.code(pkce), pkce.verifier

    def machine(self) -> RegisteredClient:
        return self.register(grant_types=["client_credentials"], redirect_uris=[])


@pytest.fixture
def ctx(rp: RegisteredClient, person, register) -> Ctx:
    http = HttpClient(raise_request_exception=False)
    force_sign_in(http, person)
    client = Client.objects.get(client_id=rp.client_id)
    consent_grant(user_id=person.pk, client=client, scopes=SCOPE.split())
    return Ctx(http, HttpClient(raise_request_exception=False), rp, register, person)


def assert_useful_description(error: str, description: object) -> None:
    """Non-empty, at least a short sentence, and more than the error code said again."""
    assert isinstance(description, str), description
    text = description.strip()
    assert len(text) >= 15, (error, text)
    assert text != f"The request failed: {error}.", text  # errors.describe's last resort
    letters = re.sub(r"[^a-z]", "", text.lower())
    assert letters != re.sub(r"[^a-z]", "", error.lower()), text
    assert len(text.replace(error, "").strip(" .:;,-")) >= 15, (error, text)


def assert_json_error(response: Any, status: int, error: str | set[str]) -> dict[str, Any]:
    assert response.status_code < 500, (response.status_code, response.content[:500])
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body: dict[str, Any] = response.json()
    expected = {error} if isinstance(error, str) else error
    assert body.get("error") in expected, body
    assert_useful_description(body["error"], body.get("error_description"))
    if body["error"] == "invalid_client" and status == 401:
        # RFC 6749 §5.2: the 401 challenges with the scheme the client authenticates with
        assert response["WWW-Authenticate"].startswith("Basic"), response["WWW-Authenticate"]
    return body


def assert_redirect_error(response: Any, error: str) -> dict[str, str]:
    """RFC 6749 §4.1.2.1: the error goes back to the client's redirect URI in the query."""
    assert response.status_code < 500, (response.status_code, response.content[:500])
    assert response.status_code == 302, (response.status_code, response.content[:500])
    location = response["Location"]
    assert location.split("?")[0] == REDIRECT_URI, location
    answer = query_of(location)
    assert answer.get("error") == error, answer
    assert_useful_description(error, answer.get("error_description"))
    assert "code" not in answer, answer
    assert answer.get("state") == STATE, answer  # §4.1.2.1: state as the client sent it
    assert answer.get("iss") == settings.ISSUER, answer  # RFC 9207 §2
    return answer


# --- the token endpoint (RFC 6749 §5.2, RFC 7636 §4.6, RFC 9700) ---------------------------


def _token(ctx: Ctx, data: dict[str, str] | list[tuple[str, str]], **kw: Any) -> Any:
    return form_post(ctx.http, TOKEN, data, **kw)


def _unknown_code(ctx: Ctx) -> Any:
    return ctx.flow.exchange("no-such-code-3f9a1c", new_pkce().verifier)


def _expired_code(ctx: Ctx) -> Any:
    code, verifier = ctx.code()
    Grant.objects.filter(code=code).update(expires=timezone.now())
    return ctx.flow.exchange(code, verifier)


def _reused_code(ctx: Ctx) -> Any:
    code, verifier = ctx.code()
    assert ctx.flow.exchange(code, verifier).status_code == 200
    return ctx.flow.exchange(code, verifier)


def _wrong_redirect_uri(ctx: Ctx) -> Any:
    code, verifier = ctx.code()
    return ctx.flow.exchange(code, verifier, redirect_uri=REDIRECT_URI + "/other")


def _wrong_code_verifier(ctx: Ctx) -> Any:
    code, _ = ctx.code()
    return ctx.flow.exchange(code, new_pkce().verifier)


def _missing_code_verifier(ctx: Ctx) -> Any:
    code, _ = ctx.code()
    return ctx.flow.exchange(code, None)


def _missing_code(ctx: Ctx) -> Any:
    data = {"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI,
            "code_verifier": new_pkce().verifier}  # fmt: skip
    return _token(ctx, data, auth=ctx.rp)


def _unknown_refresh_token(ctx: Ctx) -> Any:
    return ctx.flow.refresh("no-such-refresh-token-77c2e0")


def _reused_rotated_refresh_token(ctx: Ctx) -> Any:
    first = ctx.flow.tokens()["refresh_token"]
    assert ctx.flow.refresh(first).status_code == 200
    return ctx.flow.refresh(first)


def _refresh_by_a_client_without_the_refresh_grant(ctx: Ctx) -> Any:
    refresh_token = ctx.flow.tokens()["refresh_token"]
    return ctx.flow.refresh(refresh_token, ctx.register(grant_types=["authorization_code"]))


def _refresh_asking_only_for_scopes_never_granted(ctx: Ctx) -> Any:
    tokens = ctx.flow.tokens(scope="openid email")
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "scope": "profile"}  # fmt: skip
    return _token(ctx, data, auth=ctx.rp)


def _wrong_secret(auth_in: str) -> Callable[[Ctx], Any]:
    def call(ctx: Ctx) -> Any:
        code, verifier = ctx.code()
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier}  # fmt: skip
        wrong = (ctx.rp.client_id, (ctx.rp.client_secret or "") + "x")
        return _token(ctx, data, auth=wrong, auth_in=auth_in)

    return call


def _unknown_client(ctx: Ctx) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": "x"}
    return _token(ctx, data, auth=("no-such-client-41d7", "x" * 43))


def _no_client_authentication(ctx: Ctx) -> Any:
    code, verifier = ctx.code()
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier, "client_id": ctx.rp.client_id}  # fmt: skip
    return _token(ctx, data)


def _no_client_at_all(ctx: Ctx) -> Any:
    return _token(ctx, {"grant_type": "refresh_token", "refresh_token": "x"})


def _public_client_presenting_a_secret(ctx: Ctx) -> Any:
    public = ctx.register(public=True)
    data = {"grant_type": "refresh_token", "refresh_token": "x"}
    return _token(ctx, data, auth=(public.client_id, "a-secret-a-public-client-never-had"))


def _grant_type(*fields: tuple[str, str]) -> Callable[[Ctx], Any]:
    return lambda ctx: _token(ctx, list(fields), auth=ctx.rp)


def _json_body(ctx: Ctx) -> Any:
    code, verifier = ctx.code()
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier}  # fmt: skip
    authorization = basic(ctx.rp.client_id, ctx.rp.client_secret or "")
    return ctx.http.post(TOKEN, body, content_type="application/json",
                         headers={"Authorization": authorization})  # fmt: skip


# --- client_credentials (RFC 6749 §4.4, RFC 8707 §2) --------------------------------------


def _cc(
    *fields: tuple[str, str], who: str = "machine", auth_in: str = "basic"
) -> Callable[[Ctx], Any]:
    def call(ctx: Ctx) -> Any:
        data = [("grant_type", "client_credentials"), *fields]
        machine = ctx.machine()
        auth: RegisteredClient | tuple[str, str] | None = {
            "machine": machine,
            "wrong secret": (machine.client_id, "wrong-secret-" + "x" * 32),
            "unknown": ("no-such-machine-5e0b", "x" * 43),
            "rp": ctx.rp,
        }.get(who)
        if who == "public":
            data.append(("client_id", ctx.register(public=True).client_id))
        return _token(ctx, data, auth=auth, auth_in=auth_in)

    return call


# --- revocation (RFC 7009 §2.2.1) and introspection (RFC 7662 §2.3) ------------------------


def _revoke(data: dict[str, str], who: str) -> Callable[[Ctx], Any]:
    def call(ctx: Ctx) -> Any:
        token = ctx.flow.tokens()["refresh_token"]
        fields = {"token": token, **data}
        auth: RegisteredClient | tuple[str, str] | None = {
            "rp": ctx.rp,
            "wrong secret": (ctx.rp.client_id, "wrong-secret"),
            "unknown": ("no-such-client-9a2f", "x" * 43),
        }.get(who)
        if who == "client_id only":
            fields["client_id"] = ctx.rp.client_id
        return form_post(ctx.http, REVOKE, {k: v for k, v in fields.items() if v}, auth=auth)

    return call


def _introspect(data: dict[str, str], who: str) -> Callable[[Ctx], Any]:
    def call(ctx: Ctx) -> Any:
        token = ctx.flow.tokens()["access_token"]
        fields = {"token": token, **data}
        auth: RegisteredClient | tuple[str, str] | None = {
            "rp": ctx.rp,
            "wrong secret": (ctx.rp.client_id, "wrong-secret"),
            "unknown": ("no-such-client-9a2f", "x" * 43),
        }.get(who)
        if who == "public":
            auth = (ctx.register(public=True).client_id, "")
        if who == "client_id only":
            fields["client_id"] = ctx.rp.client_id
        fields = {k: v for k, v in fields.items() if v}
        return form_post(ctx.http, INTROSPECT, fields, auth=auth)

    return call


# --- userinfo (RFC 6750 §3.1) --------------------------------------------------------------


def _userinfo_token_in_query(ctx: Ctx) -> Any:
    return ctx.http.get(USERINFO, {"access_token": ctx.flow.tokens()["access_token"]})


def _userinfo_token_twice(ctx: Ctx) -> Any:
    token = ctx.flow.tokens()["access_token"]
    return ctx.http.post(
        USERINFO, f"access_token={token}", content_type="application/x-www-form-urlencoded",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip


def _userinfo_invalid_token(ctx: Ctx) -> Any:
    return ctx.http.get(USERINFO, headers={"Authorization": "Bearer not-a-token"})


def _userinfo_insufficient_scope(ctx: Ctx) -> Any:
    machine = ctx.machine()
    data = {"grant_type": "client_credentials"}
    token = form_post(ctx.http, TOKEN, data, auth=machine).json()["access_token"]
    return ctx.http.get(USERINFO, headers={"Authorization": f"Bearer {token}"})


JSON_ERRORS: dict[str, tuple[Callable[[Ctx], Any], int, str | set[str]]] = {
    # RFC 6749 §4.1.3 / §5.2 invalid_grant: the code's many ways to be wrong
    "token: unknown code": (_unknown_code, 400, "invalid_grant"),
    "token: expired code": (_expired_code, 400, "invalid_grant"),
    "token: reused code": (_reused_code, 400, "invalid_grant"),
    "token: wrong redirect_uri": (_wrong_redirect_uri, 400, "invalid_grant"),
    "token: missing code": (_missing_code, 400, "invalid_request"),
    # RFC 7636 §4.6: a wrong verifier is invalid_grant; a missing one invalid_request
    "token: wrong code_verifier": (_wrong_code_verifier, 400, "invalid_grant"),
    "token: missing code_verifier": (
        _missing_code_verifier, 400, {"invalid_request", "invalid_grant"}
    ),
    # RFC 6749 §6 / RFC 9700 §4.14.2
    "token: unknown refresh token": (_unknown_refresh_token, 400, "invalid_grant"),
    "token: reused rotated refresh token": (_reused_rotated_refresh_token, 400, "invalid_grant"),
    "token: refresh by a client without refresh grant": (
        _refresh_by_a_client_without_the_refresh_grant, 400, "unauthorized_client"
    ),
    "token: refresh asking only for scopes never granted": (
        _refresh_asking_only_for_scopes_never_granted, 400, "invalid_scope"
    ),
    # RFC 6749 §5.2 invalid_client: 401 with a Basic challenge
    "token: wrong client secret (basic)": (_wrong_secret("basic"), 401, "invalid_client"),
    "token: wrong client secret (post)": (_wrong_secret("post"), 401, "invalid_client"),
    "token: unknown client": (_unknown_client, 401, "invalid_client"),
    "token: confidential client without authentication": (
        _no_client_authentication, 401, "invalid_client"
    ),
    "token: no client at all": (_no_client_at_all, 401, "invalid_client"),
    "token: public client presenting a secret": (
        _public_client_presenting_a_secret, 401, "invalid_client"
    ),
    # RFC 6749 §5.2 unsupported_grant_type / invalid_request
    "token: unsupported grant_type": (_grant_type(("grant_type", "implicit")), 400,
                                      "unsupported_grant_type"),
    "token: missing grant_type": (_grant_type(("code", "abc")), 400, "invalid_request"),
    "token: repeated grant_type": (
        _grant_type(("grant_type", "refresh_token"), ("grant_type", "refresh_token"),
                    ("refresh_token", "x")),
        400, "invalid_request",
    ),
    "token: password grant": (
        _grant_type(("grant_type", "password"), ("username", "ada@example.com"),
                    ("password", PASSWORD)),
        400, "unsupported_grant_type",
    ),
    "token: device_code grant with device_code": (
        _grant_type(("grant_type", DEVICE_CODE), ("device_code", "GmRhmhcxhwAzkoEqiMEg")),
        400, "unsupported_grant_type",
    ),
    "token: device_code grant without device_code": (
        _grant_type(("grant_type", DEVICE_CODE)), 400, "unsupported_grant_type"
    ),
    "token: JSON body": (_json_body, 400, "invalid_request"),
    # RFC 6749 §4.4, §3.3; RFC 8707 §2
    "client_credentials: wrong secret": (_cc(who="wrong secret"), 401, "invalid_client"),
    "client_credentials: wrong secret (post)": (
        _cc(who="wrong secret", auth_in="post"), 401, "invalid_client"
    ),
    "client_credentials: unknown client": (_cc(who="unknown"), 401, "invalid_client"),
    "client_credentials: public client": (_cc(who="public"), 401, "invalid_client"),
    "client_credentials: not registered for it": (_cc(who="rp"), 400, "unauthorized_client"),
    "client_credentials: person scope": (_cc(("scope", "openid")), 400, "invalid_scope"),
    "client_credentials: unknown scope": (_cc(("scope", "nope")), 400, "invalid_scope"),
    "client_credentials: unknown scope, not ASCII": (
        _cc(("scope", 'r\u00e9sum\u00e9 "quoted"')), 400, "invalid_scope"
    ),
    "client_credentials: repeated scope": (
        _cc(("scope", "admin"), ("scope", "admin")), 400, "invalid_request"
    ),
    "client_credentials: relative resource": (
        _cc(("resource", "/relative")), 400, "invalid_target"
    ),
    # RFC 7009 §2.2.1 (RFC 6749 §5.2 errors)
    "revoke: wrong client secret": (_revoke({}, "wrong secret"), 401, "invalid_client"),
    "revoke: unknown client": (_revoke({}, "unknown"), 401, "invalid_client"),
    "revoke: confidential client without authentication": (
        _revoke({}, "client_id only"), 401, "invalid_client"
    ),
    "revoke: missing token": (_revoke({"token": ""}, "rp"), 400, "invalid_request"),
    # RFC 7662 §2.1 / §2.3
    "introspect: wrong client secret": (_introspect({}, "wrong secret"), 401, "invalid_client"),
    "introspect: unknown client": (_introspect({}, "unknown"), 401, "invalid_client"),
    "introspect: public client": (_introspect({}, "public"), 401, "invalid_client"),
    "introspect: no client authentication": (_introspect({}, "none"), 401, "invalid_client"),
    "introspect: confidential client without authentication": (
        _introspect({}, "client_id only"), 401, "invalid_client"
    ),
    "introspect: missing token": (_introspect({"token": ""}, "rp"), 400, "invalid_request"),
    # RFC 6750 §3.1
    "userinfo: token in the query": (_userinfo_token_in_query, 400, "invalid_request"),
    "userinfo: token in header and body": (_userinfo_token_twice, 400, "invalid_request"),
    "userinfo: invalid token": (_userinfo_invalid_token, 401, "invalid_token"),
    "userinfo: token without openid": (_userinfo_insufficient_scope, 403, "insufficient_scope"),
}  # fmt: skip


@pytest.mark.parametrize("case", JSON_ERRORS.keys())
def test_json_error_has_a_useful_description(ctx: Ctx, case: str) -> None:
    # RFC 6749 §5.2 (error_description: "assist the client developer"); RFC 6750 §3.1;
    # RFC 7009 §2.2.1; RFC 7662 §2.3
    call, status, error = JSON_ERRORS[case]
    response = call(ctx)
    body = assert_json_error(response, status, error)
    assert "access_token" not in body
    if case.startswith(("token:", "client_credentials:")):
        assert response["Cache-Control"] == "no-store"  # RFC 6749 §5.1
    if case.startswith("userinfo:"):
        # RFC 6750 §3: the challenge names the error and describes it
        challenge = response["WWW-Authenticate"]
        assert challenge.startswith("Bearer "), challenge
        assert f'error="{body["error"]}"' in challenge, challenge
        assert "error_description=" in challenge, challenge


def test_password_grant_answers_the_same_for_a_right_and_a_wrong_password(ctx: Ctx) -> None:
    # RFC 9700 §2.4: the password grant MUST NOT be used; refusing it must not turn the
    # token endpoint into a password oracle past the sign-in page's rate limits
    answers = []
    for username, password in (
        ("ada@example.com", PASSWORD),
        ("ada@example.com", PASSWORD + "-wrong"),
        ("nobody@example.com", PASSWORD),
    ):
        data = {"grant_type": "password", "username": username, "password": password,
                "scope": "openid"}  # fmt: skip
        response = form_post(ctx.http, TOKEN, data, auth=ctx.rp)
        body = assert_json_error(response, 400, "unsupported_grant_type")
        answers.append((response.status_code, body))
    assert answers[0] == answers[1] == answers[2]


# --- the authorization endpoint (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6) --------------------


def _authorize(**extra: str | None) -> Callable[[Ctx], Any]:
    return lambda ctx: ctx.flow.authorize(**extra)


def _authorize_anonymous(**extra: str | None) -> Callable[[Ctx], Any]:
    return lambda ctx: Flow(ctx.anonymous, ctx.rp).authorize(**extra)


def _authorize_new_client(**extra: str | None) -> Callable[[Ctx], Any]:
    """A client the signed-in person has not allowed yet."""
    return lambda ctx: Flow(ctx.http, ctx.register()).authorize(**extra)


def _authorize_without_pkce_or_nonce(ctx: Ctx) -> Any:
    # a confidential client registered without PKCE must bind its code to a nonce
    rp = ctx.register(require_pkce=False, skip_consent=True)
    return Flow(ctx.http, rp).authorize(code_challenge=None, code_challenge_method=None,
                                        nonce=None)  # fmt: skip


def _authorize_repeated(ctx: Ctx) -> Any:
    pkce = new_pkce()
    params = [("response_type", "code"), ("client_id", ctx.rp.client_id),
              ("redirect_uri", REDIRECT_URI), ("scope", SCOPE), ("scope", "openid"),
              ("state", STATE), ("nonce", "n-1"), ("code_challenge", pkce.challenge),
              ("code_challenge_method", "S256")]  # fmt: skip
    return ctx.http.get(f"{AUTHORIZE}?{urlencode(params)}")


def _consent_denied(ctx: Ctx) -> Any:
    page = _authorize_new_client()(ctx)
    assert page.status_code == 200, page.status_code
    match = re.search(r'name="request" value="([^"]+)"', page.content.decode())
    assert match, "the consent page has no request blob"
    return ctx.http.post(
        "/oauth/authorize/consent", {"request": match.group(1), "decision": "deny"}
    )


REDIRECT_ERRORS: dict[str, tuple[Callable[[Ctx], Any], str]] = {
    # RFC 6749 §3.3 / OIDC Core §3.1.2.1: unknown scopes are ignored, nothing left is refused
    "only unknown scopes": (_authorize(scope="nonsense other-nonsense"), "invalid_scope"),
    "one unknown scope": (_authorize(scope="nonsense"), "invalid_scope"),
    # the description must not echo what breaks its character set (RFC 6749 §4.1.2.1)
    "unknown scope, not ASCII": (_authorize(scope='r\u00e9sum\u00e9 "q"'), "invalid_scope"),
    # RFC 6749 §4.1.2.1; RFC 9700 §2.1.2 (no implicit, no hybrid)
    "response_type=token": (_authorize(response_type="token"), "unsupported_response_type"),
    "response_type=id_token": (
        _authorize(response_type="id_token"), "unsupported_response_type"
    ),
    "response_type=code id_token": (
        _authorize(response_type="code id_token"), "unsupported_response_type"
    ),
    "response_type=unknown": (_authorize(response_type="nonsense"), "unsupported_response_type"),
    # Multiple Response Type Encoding Practices §2.1: query only
    "response_mode=form_post": (_authorize(response_mode="form_post"), "invalid_request"),
    "response_mode=fragment": (_authorize(response_mode="fragment"), "invalid_request"),
    # RFC 7636 §4.4.1, RFC 9700 §2.1.1
    "missing code_challenge": (
        _authorize(code_challenge=None, code_challenge_method=None), "invalid_request"
    ),
    "code_challenge_method=plain": (_authorize(code_challenge_method="plain"), "invalid_request"),
    "code_challenge without method": (_authorize(code_challenge_method=None), "invalid_request"),
    "no PKCE and no nonce": (_authorize_without_pkce_or_nonce, "invalid_request"),
    # RFC 6749 §3.1: no repeated parameters
    "repeated parameter": (_authorize_repeated, "invalid_request"),
    # OIDC Core §6: request objects are not supported (discovery says so)
    "request object": (_authorize(request="eyJhbGciOiJub25lIn0.e30."), "request_not_supported"),
    "request_uri": (
        _authorize(request_uri="https://rp.example.com/request.jwt"), "request_uri_not_supported"
    ),
    # OIDC Core §3.1.2.1: prompt and max_age
    "unknown prompt": (_authorize(prompt="bogus"), "invalid_request"),
    "unknown prompt, not ASCII": (_authorize(prompt='s\u00e9lect "q"'), "invalid_request"),
    "prompt=none with login": (_authorize(prompt="none login"), "invalid_request"),
    "max_age not a number": (_authorize(max_age="soon"), "invalid_request"),
    "foreign id_token_hint": (_authorize(id_token_hint="not-an-id-token"), "invalid_request"),
    # OIDC Core §3.1.2.6
    "prompt=none without login": (_authorize_anonymous(prompt="none"), "login_required"),
    "prompt=none without consent": (_authorize_new_client(prompt="none"), "consent_required"),
    # RFC 6749 §4.1.2.1 access_denied
    "consent denied": (_consent_denied, "access_denied"),
}  # fmt: skip


@pytest.mark.parametrize("case", REDIRECT_ERRORS.keys())
def test_redirect_error_has_a_useful_description(ctx: Ctx, case: str) -> None:
    # RFC 6749 §4.1.2.1 error_description; OIDC Core §3.1.2.6
    call, error = REDIRECT_ERRORS[case]
    assert_redirect_error(call(ctx), error)


# --- the character set of error_description ----------------------------------------------

# RFC 6749 §4.1.2.1, §5.2 and RFC 6750 §3: "Values for the error_description parameter MUST
# NOT include characters outside the set %x20-21 / %x23-5B / %x5D-7E": printable ASCII without
# the double quote and the backslash, so that it fits the quoted-string of a WWW-Authenticate
# challenge as it is.
OUTSIDE_DESCRIPTION_CHARACTERS = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")

# One error path per place a description is written, and the paths that echo the request.
CHARACTER_SET_CASES = [
    "token: wrong client secret (basic)",  # oauth_validator._client_auth_failed
    "revoke: unknown client",  # the same, at the revocation endpoint
    "introspect: public client",  # views.introspect
    "client_credentials: wrong secret",  # client_credentials._authenticated_client
    "client_credentials: unknown scope, not ASCII",  # scopes.granted_scopes echoes the scope
    "token: reused rotated refresh token",  # oauth_validator.validate_refresh_token
    "token: missing grant_type",  # views._unsupported_grant
    "userinfo: token in the query",  # views._bearer_token
    "userinfo: token in header and body",
    "authorize: unknown scope, not ASCII",  # scopes.granted_scopes through oauthlib
    "authorize: unknown prompt, not ASCII",  # authorize.check_prompt echoes the value
    "authorize: repeated parameter",  # authorize.check_no_repeats names the parameter
]


@pytest.mark.parametrize("case", CHARACTER_SET_CASES)
def test_error_description_uses_only_the_characters_the_rfc_allows(ctx: Ctx, case: str) -> None:
    # RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3 (the challenge's error_description too)
    if case.startswith("authorize: "):
        call, error = REDIRECT_ERRORS[case.removeprefix("authorize: ")]
        response = call(ctx)
        description = assert_redirect_error(response, error)["error_description"]
    else:
        json_call, status, json_error = JSON_ERRORS[case]
        response = json_call(ctx)
        description = assert_json_error(response, status, json_error)["error_description"]
    outside = OUTSIDE_DESCRIPTION_CHARACTERS.findall(description)
    assert not outside, (description, outside)
    if case.startswith("userinfo: "):
        challenge = response["WWW-Authenticate"]
        assert not OUTSIDE_DESCRIPTION_CHARACTERS.findall(challenge.replace('"', "")), challenge
