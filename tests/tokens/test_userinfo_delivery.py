"""How the access token reaches /oauth/userinfo (RFC 6750 §2; OIDC Core §5.3.1): in the
Authorization header (§2.1) or a form-encoded POST body (§2.2), one way only, never in the URL
(§2.3 is forbidden by RFC 9700 §4.3.2). Real tokens from the code flow (Flow.tokens)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client as HttpClient

from apps.sessions.models import LoginSession
from apps.sessions.services import session_end
from tests.tokens.conftest import USERINFO, Flow

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"


def _body(http: HttpClient, fields: list[tuple[str, str]], content_type: str = FORM, **kw: Any):
    return http.post(USERINFO, urlencode(fields), content_type=content_type, **kw)


def assert_claims(response: Any, person) -> None:
    """OIDC Core §5.3.2: the person's claims, never cached (§5.3.2 / RFC 6749 §5.1)."""
    assert response.status_code == 200, (response.status_code, response.content[:300])
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["sub"] == str(person.pk)
    assert body["email"] == person.email


def assert_bearer_error(response: Any, status: int, error: str) -> None:
    """RFC 6750 §3 / §3.1: the status of the error, and a challenge that names it."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith("Bearer "), challenge
    assert f'error="{error}"' in challenge, challenge
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert "sub" not in body


def assert_no_token_sent(response: Any) -> None:
    """RFC 6750 §3.1: a request without authentication gets a 401 whose challenge carries
    no error code."""
    assert response.status_code == 401, (response.status_code, response.content[:300])
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith("Bearer "), challenge
    assert "error=" not in challenge, challenge
    assert "sub" not in response.json()


# --- the ways that work --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_token_in_the_authorization_header(flow: Flow, person, method: str) -> None:
    # RFC 6750 §2.1; OIDC Core §5.3.1; oidcc-userinfo-get, oidcc-userinfo-post-header
    token = flow.tokens()["access_token"]
    send = getattr(flow.http, method)
    assert_claims(send(USERINFO, headers={"Authorization": f"Bearer {token}"}), person)


@pytest.mark.parametrize("content_type", [FORM, f"{FORM}; charset=UTF-8"])
def test_token_in_a_form_encoded_post_body(flow: Flow, person, content_type: str) -> None:
    # RFC 6750 §2.2; oidcc-userinfo-post-body (a charset parameter is still the form type)
    token = flow.tokens()["access_token"]
    assert_claims(_body(flow.http, [("access_token", token)], content_type), person)


# --- one way only ------------------------------------------------------------------------


def test_token_in_the_header_and_the_body_is_invalid_request(flow: Flow) -> None:
    # RFC 6750 §2: "Clients MUST NOT use more than one method to transmit the token in each
    # request"; §3.1 invalid_request is 400
    token = flow.tokens()["access_token"]
    response = _body(
        flow.http, [("access_token", token)], headers={"Authorization": f"Bearer {token}"}
    )
    assert_bearer_error(response, 400, "invalid_request")


@pytest.mark.parametrize("method", ["get", "post"])
def test_token_in_the_url_query_is_invalid_request(flow: Flow, method: str) -> None:
    # RFC 9700 §4.3.2: access tokens MUST NOT be sent in the query (RFC 6750 §2.3 allowed it);
    # refused as invalid_request, not taken, whatever the request method
    token = flow.tokens()["access_token"]
    response = getattr(flow.http, method)(f"{USERINFO}?{urlencode({'access_token': token})}")
    assert_bearer_error(response, 400, "invalid_request")
    assert "URL" in response.json()["error_description"]


def test_token_in_the_query_is_refused_even_beside_a_header(flow: Flow) -> None:
    # RFC 9700 §4.3.2: the leak happened; the header does not make the URL token acceptable
    token = flow.tokens()["access_token"]
    response = flow.http.get(
        USERINFO, {"access_token": token}, headers={"Authorization": f"Bearer {token}"}
    )
    assert_bearer_error(response, 400, "invalid_request")


def test_repeated_access_token_in_the_body_is_invalid_request(flow: Flow) -> None:
    # RFC 6749 §3.2 / RFC 6750 §2.2: one access_token parameter; two, even equal, is malformed
    token = flow.tokens()["access_token"]
    response = _body(flow.http, [("access_token", token), ("access_token", token)])
    assert_bearer_error(response, 400, "invalid_request")


# --- what does not count as sending a token ----------------------------------------------


def test_body_token_with_a_json_content_type_is_no_token(flow: Flow) -> None:
    # RFC 6750 §2.2: the body method needs Content-Type application/x-www-form-urlencoded;
    # a JSON body carries no token at all
    token = flow.tokens()["access_token"]
    response = flow.http.post(USERINFO, {"access_token": token}, content_type="application/json")
    assert_no_token_sent(response)


def test_body_token_in_a_multipart_body_is_no_token(flow: Flow) -> None:
    # RFC 6750 §2.2: "The HTTP request entity-body is single-part"
    token = flow.tokens()["access_token"]
    assert_no_token_sent(flow.http.post(USERINFO, {"access_token": token}))  # multipart/form-data


def test_body_token_in_a_get_request_is_no_token(flow: Flow) -> None:
    # RFC 6750 §2.2: "The HTTP request method is one for which the request-body has defined
    # semantics. In particular, this means that the GET method MUST NOT be used."
    token = flow.tokens()["access_token"]
    response = flow.http.generic("GET", USERINFO, urlencode({"access_token": token}),
                                 content_type=FORM)  # fmt: skip
    assert_no_token_sent(response)


@pytest.mark.parametrize(
    "send",
    [
        lambda http: http.get(USERINFO, headers={"Authorization": "Bearer "}),
        lambda http: http.get(USERINFO, headers={"Authorization": "Bearer"}),
        lambda http: http.get(USERINFO, headers={"Authorization": "Bearer    "}),
        lambda http: _body(http, [("access_token", "")]),
        lambda http: _body(http, [("access_token", "   ")]),
    ],
    ids=["header 'Bearer '", "header 'Bearer'", "header of spaces", "empty body", "body spaces"],
)
def test_empty_token_is_401(client: HttpClient, send) -> None:
    # RFC 6750 §3.1: no usable token is no authentication: 401 with a Bearer challenge
    response = send(client)
    assert response.status_code == 401, (response.status_code, response.content[:300])
    assert response["WWW-Authenticate"].startswith("Bearer ")
    assert "sub" not in response.json()


# --- a token whose session ended --------------------------------------------------------------


@pytest.mark.parametrize("way", ["header", "body"])
def test_token_of_an_ended_session_is_invalid_token(flow: Flow, way: str) -> None:
    # RFC 6750 §3.1 invalid_token (revoked); OIDC RP-Initiated Logout: logout ends every
    # token of the session, whichever way it is sent
    token = flow.tokens()["access_token"]
    session_end(session=LoginSession.objects.get(), reason="logout")
    if way == "header":
        response = flow.http.get(USERINFO, headers={"Authorization": f"Bearer {token}"})
    else:
        response = _body(flow.http, [("access_token", token)])
    assert_bearer_error(response, 401, "invalid_token")
