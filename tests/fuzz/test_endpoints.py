"""The form and query parameters of each OAuth endpoint, through Django's test client: valid
requests with parameters replaced, dropped, repeated or added, values with control characters,
NUL, markup and 10,000 characters, and raw query strings and bodies with invalid percent-escapes
(invalid UTF-8 once decoded). What must hold, whatever arrives:

- never a 5xx, and never `server_error`;
- the protocol's own error: RFC 6749 §4.1.2.1 in the redirect (or the refusal page when the
  client or redirect URI cannot be trusted, §4.1.2.1 first paragraph), §5.2 at the token
  endpoint, RFC 7662 §2.3 at introspection, RFC 7009 §2.2 at revocation, RFC 9126 §2.3 at PAR,
  RFC 6750 §3.1 at userinfo, a page of ours at RP-Initiated Logout 1.0 §2;
- the markup we send never comes back unescaped (a page or a JSON error_description).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from django.test import Client as HttpClient
from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.fuzz import budget
from tests.fuzz.strategies import compact_jws, hostile_text, json_values, mostly
from tests.rp import POST_LOGOUT_URI, REDIRECT_URI, RegisteredClient
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import Flow, basic, new_pkce

MARKUP = "<script>alert(1)</script>"
_ERROR_CODE = re.compile(r"[a-z_]+\Z")
# RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6 (errors an authorization response may carry)
AUTHORIZE_ERRORS = {
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
    "invalid_scope", "temporarily_unavailable", "interaction_required", "login_required",
    "account_selection_required", "consent_required", "invalid_request_uri",
    "invalid_request_object", "request_not_supported", "request_uri_not_supported",
    "registration_not_supported",
}  # fmt: skip
# RFC 6749 §5.2, RFC 8707 §2 (invalid_target), RFC 9449 §5 / §8, and 429
# temporarily_unavailable (our rate limits)
TOKEN_ERRORS = {
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "invalid_target", "invalid_dpop_proof",
    "use_dpop_nonce", "temporarily_unavailable",
}  # fmt: skip

# Query-string pieces no encoder makes: invalid percent-escapes, escapes of invalid UTF-8
# (RFC 3986 §2.1, RFC 3629), NUL, a lone '=' or '&'
raw_pieces = st.one_of(
    st.sampled_from([
        "%ff=1", "state=%C3%28", "client_id=%00", "a=%", "scope=%E2%82", "redirect_uri=%zz",
        "=", "&&", "client_id", "nonce=%ED%A0%80", "code=%C0%AF",
    ]),
    st.from_regex(r"[a-z_]{1,14}=(%[0-9A-Fa-f]{2}|%[g-z]|[^&=#%\s]){0,12}", fullmatch=True),
)  # fmt: skip


def _encode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)


@st.composite
def parameters(draw: st.DrawFn, base: dict[str, str], names: list[str]) -> str:
    """A form-encoded parameter string near `base`: each parameter kept, replaced, dropped or
    sent twice; others added; raw pieces mixed in."""
    pairs: list[tuple[str, str]] = []
    for name, value in base.items():
        fate = draw(st.sampled_from(["keep"] * 9 + ["replace", "drop", "twice"]))
        if fate == "keep":
            pairs.append((name, value))
        elif fate == "replace":
            pairs.append((name, draw(hostile_text)))
        elif fate == "twice":
            pairs += [(name, value), (name, draw(st.one_of(st.just(value), hostile_text)))]
    for _ in range(draw(st.integers(0, 2))):
        pairs.append(
            (draw(st.one_of(st.sampled_from(names), st.text(max_size=8))), draw(hostile_text))
        )
    encoded = _encode(pairs)
    if draw(st.sampled_from([False] * 3 + [True])):
        pieces = encoded.split("&")
        pieces.insert(draw(st.integers(0, len(pieces))), draw(raw_pieces))
        encoded = "&".join(pieces)
    return encoded


def _no_reflection(response: Any) -> None:
    event(f"status {response.status_code}")  # --hypothesis-show-statistics: how deep it got
    assert response.status_code < 500, (response.status_code, response.content[:300])
    assert MARKUP.encode() not in response.content, response.content[:500]
    assert "<script" not in response.get("Location", "")


def _oauth_error(response: Any, allowed: set[str] | None = None) -> str:
    body = response.json()
    error = body["error"]
    assert isinstance(error, str)
    assert _ERROR_CODE.match(error)
    assert error != "server_error"
    event(f"error {error}")
    if allowed is not None:
        assert error in allowed, body
    return error


def _form(http: Any, path: str, body: str, **headers: str) -> Any:
    return http.post(path, body, content_type="application/x-www-form-urlencoded", **headers)


def _get(http: Any, path: str, query: str, **headers: str) -> Any:
    """A GET with `query` as its raw query string: as a WSGI server passes it, the request's
    bytes (UTF-8 here) decoded as Latin-1 (PEP 3333)."""
    return http.get(path, QUERY_STRING=query.encode().decode("latin-1"), **headers)


# --- /oauth/authorize (RFC 6749 §4.1.1, OIDC Core §3.1.2.1) --------------------------------

AUTHORIZE_NAMES = [
    "response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
    "code_challenge_method", "nonce", "prompt", "max_age", "acr_values", "request_uri",
    "request", "claims", "login_hint", "id_token_hint", "ui_locales", "response_mode",
    "display",
]  # fmt: skip


def _authorize_base(rp: RegisteredClient) -> dict[str, str]:
    pkce = new_pkce()
    return {
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email", "state": "st-1", "nonce": "n-1",
        "code_challenge": pkce.challenge, "code_challenge_method": "S256",
    }  # fmt: skip


@budget(45)
@given(data=st.data(), method=st.sampled_from(["get", "post"]))
def test_authorize_answers_with_a_protocol_error_or_a_page(
    flow: Flow, fresh_redis: Callable[[], None], data: Any, method: str
) -> None:
    fresh_redis()
    base = _authorize_base(flow.rp)
    query = data.draw(parameters(base, AUTHORIZE_NAMES))
    if method == "get":
        response = _get(flow.http, "/oauth/authorize", query)
    else:
        response = _form(flow.http, "/oauth/authorize", query)
    _assert_authorize_answer(response)


def _assert_authorize_answer(response: Any) -> None:
    _no_reflection(response)
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith(REDIRECT_URI + "?"):
            answer = dict(parse_qsl(urlsplit(location).query))
            assert ("code" in answer) != ("error" in answer), answer
            if "error" in answer:
                assert answer["error"] in AUTHORIZE_ERRORS, answer
        else:  # sign-in, consent, or a pushed request's own page: ours, never elsewhere
            assert location.startswith("/") or location.startswith("http://testserver/"), location
    else:
        # §4.1.2.1: the client or redirect URI is not to be trusted: the refusal page; 414
        # for a query string past what any server takes (RFC 9110 §15.5.15)
        assert response.status_code in (200, 400, 414, 429), response.status_code


# Values one parameter at a time: numbers in every script (str.isdigit() is true of "²",
# which int() refuses), JSON of every shape (the claims parameter), and hostile text
_one_value = st.one_of(
    hostile_text,
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4),
    json_values.map(lambda value: json.dumps(value)),
)


@budget(60)
@given(
    name=st.sampled_from(AUTHORIZE_NAMES), value=_one_value, method=st.sampled_from(["get", "post"])
)
@example(name="max_age", value="\u00b2", method="get")  # was ValueError out of int("²"): a 500
@example(name="claims", value='{"id_token":' * 3000, method="post")
@example(name="prompt", value="login", method="get")
def test_authorize_with_any_one_parameter_value_answers_a_protocol_error_or_a_page(
    flow: Flow, fresh_redis: Callable[[], None], name: str, value: str, method: str
) -> None:
    fresh_redis()
    query = _encode([*({**_authorize_base(flow.rp), name: value}).items()])
    if method == "get":
        response = _get(flow.http, "/oauth/authorize", query)
    else:
        response = _form(flow.http, "/oauth/authorize", query)
    _assert_authorize_answer(response)


# --- /oauth/token (RFC 6749 §3.2, §4.1.3, §5.2) ----------------------------------------------

TOKEN_NAMES = [
    "grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret",
    "refresh_token", "scope", "resource", "audience",
]  # fmt: skip


@budget(45)
@given(data=st.data(), authenticate=st.booleans())
def test_token_endpoint_answers_with_a_token_or_an_rfc6749_error(
    flow: Flow, fresh_redis: Callable[[], None], data: Any, authenticate: bool
) -> None:
    fresh_redis()
    grant = data.draw(
        st.sampled_from(["authorization_code", "refresh_token", "client_credentials"])
    )
    pkce = new_pkce()
    base = {"grant_type": grant, "redirect_uri": REDIRECT_URI}
    if grant == "authorization_code":
        base |= {"code": flow.code(pkce), "code_verifier": pkce.verifier}
    elif grant == "refresh_token":
        base["refresh_token"] = data.draw(st.one_of(st.text(max_size=60), compact_jws))
    headers = {"HTTP_AUTHORIZATION": basic(flow.rp.client_id, flow.rp.client_secret)}
    if not authenticate:
        base |= {"client_id": flow.rp.client_id, "client_secret": flow.rp.client_secret}
        headers = {}
    response = _form(flow.http, "/oauth/token", data.draw(parameters(base, TOKEN_NAMES)), **headers)
    _no_reflection(response)
    if response.status_code == 200:
        assert response.json()["token_type"] in ("Bearer", "DPoP")
    else:
        assert response.status_code in (400, 401, 429), response.status_code
        _oauth_error(response, TOKEN_ERRORS)


# --- introspection (RFC 7662), revocation (RFC 7009), PAR (RFC 9126) -------------------------


@budget(30)
@given(data=st.data())
def test_introspection_answers_active_or_an_error(
    flow: Flow, fresh_redis: Callable[[], None], data: Any
) -> None:
    fresh_redis()
    base = {"token": data.draw(mostly(flow.tokens()["access_token"], compact_jws)),
            "token_type_hint": "access_token"}  # fmt: skip
    body = data.draw(parameters(base, ["token", "token_type_hint", "client_id", "client_secret"]))
    authorization = data.draw(
        st.one_of(st.just(basic(flow.rp.client_id, flow.rp.client_secret)), hostile_text)
    )
    response = _form(flow.http, "/oauth/introspect", body, HTTP_AUTHORIZATION=authorization)
    _no_reflection(response)
    if response.status_code == 200:  # RFC 7662 §2.2
        assert isinstance(response.json()["active"], bool)
    else:  # §2.3: the protected resource is not authorized, or the request is malformed
        assert response.status_code in (400, 401, 429), response.status_code
        _oauth_error(response)


@budget(30)
@given(data=st.data())
def test_revocation_answers_200_or_an_rfc7009_error(
    flow: Flow, fresh_redis: Callable[[], None], data: Any
) -> None:
    fresh_redis()
    base = {"token": data.draw(st.one_of(compact_jws, hostile_text)),
            "token_type_hint": data.draw(st.sampled_from(["access_token", "refresh_token", "x"])),
            "client_id": flow.rp.client_id, "client_secret": flow.rp.client_secret}  # fmt: skip
    body = data.draw(parameters(base, ["token", "token_type_hint", "client_id", "client_secret"]))
    response = _form(flow.http, "/oauth/revoke", body)
    _no_reflection(response)
    if response.status_code != 200:  # RFC 7009 §2.2: invalid tokens get 200 too
        assert response.status_code in (400, 401, 429), response.status_code
        _oauth_error(response)


@budget(30)
@given(data=st.data())
def test_par_answers_a_request_uri_or_an_rfc9126_error(
    flow: Flow, fresh_redis: Callable[[], None], data: Any
) -> None:
    fresh_redis()
    base = {**_authorize_base(flow.rp), "client_secret": flow.rp.client_secret}
    body = data.draw(parameters(base, [*AUTHORIZE_NAMES, "client_secret"]))
    response = _form(flow.http, "/oauth/par", body)
    _no_reflection(response)
    if response.status_code == 201:  # RFC 9126 §2.2
        assert response.json()["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    else:  # §2.3
        assert response.status_code in (400, 401, 429), response.status_code
        _oauth_error(response)


# --- userinfo (OIDC Core §5.3, RFC 6750) ------------------------------------------------------


@budget(30)
@given(data=st.data(), method=st.sampled_from(["get", "post"]))
def test_userinfo_answers_claims_or_an_rfc6750_error(
    flow: Flow, fresh_redis: Callable[[], None], data: Any, method: str
) -> None:
    fresh_redis()
    scheme = data.draw(st.sampled_from(["Bearer ", "bearer ", "DPoP ", "Basic ", "", "Bearer  "]))
    token = data.draw(mostly(flow.tokens()["access_token"], st.one_of(compact_jws, hostile_text)))
    headers = {"HTTP_AUTHORIZATION": scheme + token} if data.draw(st.booleans()) else {}
    in_body = {"access_token": token} if data.draw(st.booleans()) else {}
    body = data.draw(parameters(in_body, ["access_token"]))
    if method == "get":
        response = _get(flow.http, "/oauth/userinfo", body, **headers)
    else:
        response = _form(flow.http, "/oauth/userinfo", body, **headers)
    _no_reflection(response)
    if response.status_code != 200:
        assert response.status_code in (400, 401, 403, 414, 429), response.status_code
        # RFC 6750 §3: the error is in WWW-Authenticate (a 401 without a token has none)
        challenge = response.get("WWW-Authenticate", "")
        if challenge:
            assert challenge.startswith(("Bearer", "DPoP")), challenge
        else:  # refused before the view: a NUL (core.middleware), a URI too long, a limit
            _oauth_error(response, {"invalid_request", "temporarily_unavailable"})
        assert MARKUP not in challenge


# --- RP-Initiated Logout 1.0 §2 --------------------------------------------------------------


@budget(30)
@given(data=st.data(), method=st.sampled_from(["get", "post"]))
def test_end_session_answers_a_page_or_a_registered_redirect(
    flow: Flow, person: Any, fresh_redis: Callable[[], None], data: Any, method: str
) -> None:
    fresh_redis()
    force_sign_in(flow.http, person)  # the example before may have signed the browser out
    base = {
        "id_token_hint": data.draw(mostly(flow.tokens()["id_token"], compact_jws)),
        "post_logout_redirect_uri": POST_LOGOUT_URI, "client_id": flow.rp.client_id,
        "state": "s-1", "ui_locales": "en", "logout_hint": "ada@example.com",
    }  # fmt: skip
    query = data.draw(parameters(base, list(base)))
    if method == "get":
        response = _get(flow.http, "/oauth/logout", query)
    else:
        response = _form(flow.http, "/oauth/logout", query)
    _no_reflection(response)
    if response.status_code == 302:  # only to a URI the client registered (§3)
        location = response["Location"]
        assert location.startswith((POST_LOGOUT_URI, "/")), location
    else:
        assert response.status_code in (200, 400, 414, 429), response.status_code


# --- the admin API's bearer and DPoP tokens (RFC 6750 §2.1, RFC 9449 §7.1) -----------------


@budget(30)
@given(data=st.data(), path=st.sampled_from(["/api/v1/users", "/oauth/userinfo"]))
def test_bearer_and_dpop_headers_of_any_shape_get_401_or_403(
    flow: Flow, fresh_redis: Callable[[], None], data: Any, path: str
) -> None:
    fresh_redis()
    scheme = data.draw(st.sampled_from(["Bearer", "DPoP", "dpop", "BEARER"]))
    token = data.draw(mostly(flow.tokens()["access_token"], st.one_of(compact_jws, hostile_text)))
    headers = {"HTTP_AUTHORIZATION": f"{scheme} {token}"}
    if data.draw(st.booleans()):
        headers["HTTP_DPOP"] = data.draw(st.one_of(compact_jws, hostile_text))
    response = HttpClient().get(path, **headers)
    _no_reflection(response)
    # 200 only for userinfo with the real token (it has no admin scope) and no proof needed
    assert response.status_code in (200, 400, 401, 403, 429), response.status_code
    if response.status_code == 200:
        assert path == "/oauth/userinfo"
    elif response.status_code in (401, 403):
        assert response["WWW-Authenticate"].startswith(("Bearer", "DPoP"))


# --- one parameter at a time, at the other endpoints ------------------------------------------


@budget(30)
@given(data=st.data(), value=_one_value)
@example(data=None, value="\u00b2")
def test_token_endpoint_with_any_one_parameter_value_answers_an_rfc6749_error(
    flow: Flow, fresh_redis: Callable[[], None], data: Any, value: str
) -> None:
    fresh_redis()
    pkce = new_pkce()
    base = {"grant_type": "authorization_code", "code": flow.code(pkce),
            "redirect_uri": REDIRECT_URI, "code_verifier": pkce.verifier,
            "client_id": flow.rp.client_id, "client_secret": flow.rp.client_secret}  # fmt: skip
    name = data.draw(st.sampled_from(TOKEN_NAMES)) if data is not None else "code_verifier"
    response = _form(flow.http, "/oauth/token", _encode([*({**base, name: value}).items()]))
    _no_reflection(response)
    if response.status_code != 200:
        assert response.status_code in (400, 401, 429), response.status_code
        _oauth_error(response, TOKEN_ERRORS)


@budget(30)
@given(name=st.sampled_from(AUTHORIZE_NAMES), value=_one_value)
@example(name="max_age", value="\u00b2")
def test_par_with_any_one_parameter_value_answers_an_rfc9126_error(
    flow: Flow, fresh_redis: Callable[[], None], name: str, value: str
) -> None:
    fresh_redis()
    base = {**_authorize_base(flow.rp), "client_secret": flow.rp.client_secret, name: value}
    response = _form(flow.http, "/oauth/par", _encode([*base.items()]))
    _no_reflection(response)
    if response.status_code != 201:
        assert response.status_code in (400, 401, 429), response.status_code
        _oauth_error(response)


@budget(30)
@given(
    name=st.sampled_from(["id_token_hint", "post_logout_redirect_uri", "client_id", "state",
                          "ui_locales", "logout_hint"]),
    value=_one_value,
)  # fmt: skip
def test_end_session_with_any_one_parameter_value_answers_a_page_or_a_redirect(
    flow: Flow, person: Any, fresh_redis: Callable[[], None], name: str, value: str
) -> None:
    fresh_redis()
    force_sign_in(flow.http, person)
    base = {"id_token_hint": flow.tokens()["id_token"], "post_logout_redirect_uri": POST_LOGOUT_URI,
            "client_id": flow.rp.client_id, "state": "s-1", name: value}  # fmt: skip
    response = _get(flow.http, "/oauth/logout", _encode([*base.items()]))
    _no_reflection(response)
    if response.status_code == 302:
        assert response["Location"].startswith((POST_LOGOUT_URI, "/")), response["Location"]
    else:
        assert response.status_code in (200, 400, 414, 429), response.status_code
