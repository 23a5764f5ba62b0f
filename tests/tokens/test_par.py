"""Pushed authorization requests (RFC 9126): the endpoint (§2), the request_uri at /authorize
(§4), "PAR required" per client (§6) and for the server (§5), and discovery (§5)."""

from __future__ import annotations

import json
import re
import signal
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.test import override_settings

from apps.core.redis import get_redis
from apps.ratelimit.rules import rules_reload
from apps.tokens import views
from apps.tokens.authorize import PAR_REQUIRED, PUSHED_PARAM
from apps.tokens.models import Client
from apps.tokens.pushed import URN_PREFIX, pushed_open
from apps.tokens.services import consent_grant
from tests.events import recorded
from tests.ratelimit.conftest import set_rule
from tests.rp import REDIRECT_URI, RegisteredClient
from tests.servers import Redis
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import (
    AUTHORIZE,
    STATE,
    Flow,
    Pkce,
    authorize_params,
    basic,
    client_redirect,
    form_post,
    new_pkce,
    query_of,
)

pytestmark = pytest.mark.django_db

PAR = "/oauth/par"
KEY = "tessera:par:"


def push(
    http: HttpClient, rp: RegisteredClient, pkce: Pkce | None = None, **extra: str | None
) -> Any:
    params = authorize_params(rp.client_id, pkce or new_pkce(), **extra)
    return form_post(http, PAR, params, auth=rp)


def pushed_uri(http: HttpClient, rp: RegisteredClient, pkce: Pkce | None = None, **extra) -> str:
    response = push(http, rp, pkce, **extra)
    assert response.status_code == 201, response.content
    request_uri: str = response.json()["request_uri"]
    return request_uri


def authorize_with(http: HttpClient, client_id: str, request_uri: str, **front: str) -> Any:
    return http.get(AUTHORIZE, {"client_id": client_id, "request_uri": request_uri, **front})


def refusal(response: Any, status: int = 400) -> dict[str, str]:
    assert response.status_code == status, (response.status_code, response.content[:400])
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body: dict[str, str] = response.json()
    return body


# --- the endpoint (RFC 9126 §2) ----------------------------------------------------------


def test_push_answers_201_with_a_single_use_urn_and_its_lifetime(client, rp) -> None:
    # RFC 9126 §2.2: request_uri and expires_in, 201 Created, not cached
    response = push(client, rp)
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"request_uri", "expires_in"}
    assert body["request_uri"].startswith(URN_PREFIX)
    assert len(body["request_uri"].removeprefix(URN_PREFIX)) == 43  # 256 random bits
    assert body["expires_in"] == settings.PAR_LIFETIME == 60
    # the record outlives expires_in only by the grace that lets "expired" be told apart
    ttl = get_redis().ttl(KEY + body["request_uri"].removeprefix(URN_PREFIX))
    assert 60 < ttl <= 120
    record = json.loads(get_redis().get(KEY + body["request_uri"].removeprefix(URN_PREFIX)))
    assert "client_secret" not in record["params"]


def test_two_pushes_get_different_request_uris(client, rp) -> None:
    assert pushed_uri(client, rp) != pushed_uri(client, rp)


def test_push_with_client_secret_post_works(client, rp) -> None:
    params = authorize_params(rp.client_id, new_pkce())
    del params["client_id"]  # form_post sends it beside client_secret
    response = form_post(client, PAR, params, auth=rp, auth_in="post")
    assert response.status_code == 201, response.content


def test_unauthenticated_push_is_invalid_client_and_recorded(client, rp) -> None:
    # RFC 9126 §2.3 / RFC 6749 §5.2: a confidential client must authenticate, as at /token
    params = authorize_params(rp.client_id, new_pkce())
    with recorded() as events:
        response = form_post(client, PAR, params)
    body = refusal(response, 401)
    assert body["error"] == "invalid_client"
    assert response["WWW-Authenticate"].startswith("Basic")
    [event] = events
    assert event.event_type == "client.auth_failed"
    assert event.metadata["endpoint"] == PAR


def test_push_with_a_wrong_secret_is_invalid_client(client, rp) -> None:
    params = authorize_params(rp.client_id, new_pkce())
    response = form_post(client, PAR, params, auth=(rp.client_id, "w" * 43))
    assert refusal(response, 401)["error"] == "invalid_client"


def test_push_naming_another_client_than_the_authenticated_one_is_refused(
    client, rp, register
) -> None:
    other = register()
    params = authorize_params(other.client_id, new_pkce())
    response = form_post(client, PAR, params, auth=rp)
    assert refusal(response, 401)["error"] == "invalid_client"


def test_pushed_request_uri_inside_a_push_is_refused(client, rp) -> None:
    # RFC 9126 §2.1: request_uri MUST NOT be pushed
    response = push(client, rp, request_uri=URN_PREFIX + "x" * 43)
    body = refusal(response)
    assert body["error"] == "invalid_request"
    assert "request_uri" in body["error_description"]


@pytest.mark.parametrize(
    ("extra", "error", "words"),
    [
        ({"redirect_uri": "https://evil.example.com/cb"}, "invalid_request", "redirect"),
        ({"response_type": "token"}, "unsupported_response_type", "response_type=code"),
        ({"code_challenge_method": "plain"}, "invalid_request", "S256"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request", "PKCE"),
        ({"scope": "admin"}, "invalid_scope", "admin"),
        ({"prompt": "sideways"}, "invalid_request", "prompt"),
        ({"response_mode": "fragment"}, "invalid_request", "response_mode"),
        ({"claims": "[1]"}, "invalid_request", "claims"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported", ""),
    ],
)
def test_pushed_parameters_are_checked_as_an_authorization_request(
    client, rp, extra, error, words
) -> None:
    # RFC 9126 §2.1: validated as any authorization request; errors as §2.3 JSON
    with recorded() as events:
        body = refusal(push(client, rp, **extra))
    assert body["error"] == error, body
    assert words in body["error_description"]
    assert not [event for event in events if event.event_type == "client.auth_failed"]


def test_repeated_pushed_parameter_is_invalid_request(client, rp) -> None:
    params = [*authorize_params(rp.client_id, new_pkce()).items(), ("scope", "openid")]
    body = refusal(form_post(client, PAR, params, auth=rp))
    assert body["error"] == "invalid_request"
    assert "repeated" in body["error_description"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"response_type": "code"}', "application/json"),
        ("response_type=code&scope=\x00", "application/x-www-form-urlencoded"),
        ("state=" + "s" * 5000, "application/x-www-form-urlencoded"),
        ("&".join(f"p{n}=v" for n in range(1500)), "application/x-www-form-urlencoded"),
        ("%ZZ=%%&&==", "application/x-www-form-urlencoded"),
        ("", "application/x-www-form-urlencoded"),
    ],
    ids=["json", "nul", "long-value", "too-many-fields", "bad-escapes", "empty"],
)
def test_malformed_push_is_a_clear_400(client, rp, body: str, content_type: str) -> None:
    assert rp.client_secret is not None
    response = client.post(
        PAR, body, content_type=content_type,
        headers={"Authorization": basic(rp.client_id, rp.client_secret)},
    )  # fmt: skip
    answer = refusal(response)
    assert answer["error"] == "invalid_request", answer
    assert answer["error_description"]


def test_oversized_push_is_refused_before_it_is_read(client, rp) -> None:
    # apps/core/request_limits.py: 413 with the OAuth JSON error under /oauth/
    body = "state=" + "s" * (settings.MAX_REQUEST_BODY_BYTES + 10)
    response = client.post(PAR, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


def test_push_is_post_only(client) -> None:
    assert client.get(PAR).status_code == 405


def test_push_is_rate_limited_per_client_in_its_own_group(client, rp, settings) -> None:
    # the token endpoint's limits, as a "par" group (IDP_RATELIMIT_PAR_*): 429 in JSON
    configured, allowed = settings.RATELIMIT_RULES, settings.RATELIMIT_ALLOW
    settings.RATELIMIT_ALLOW = ()
    try:
        set_rule(settings, "par.client", "2/1m")
        answers = [push(client, rp) for _ in range(3)]
    finally:
        settings.RATELIMIT_RULES, settings.RATELIMIT_ALLOW = configured, allowed
        rules_reload()
    assert [answer.status_code for answer in answers] == [201, 201, 429]
    assert answers[-1].json()["error"] == "temporarily_unavailable"


# --- the request_uri at /authorize (RFC 9126 §4) ------------------------------------------


def test_code_flow_through_a_pushed_request(flow: Flow) -> None:
    pkce = new_pkce()
    request_uri = pushed_uri(flow.http, flow.rp, pkce)
    answer = client_redirect(authorize_with(flow.http, flow.rp.client_id, request_uri))
    assert answer["state"] == STATE
    assert answer["iss"] == settings.ISSUER
    response = flow.exchange(answer["code"], pkce.verifier)
    assert response.status_code == 200, response.content
    assert response.json()["id_token"]


def test_front_channel_parameters_beside_request_uri_are_ignored(flow: Flow) -> None:
    # RFC 9126 §4: only the pushed parameters count
    request_uri = pushed_uri(flow.http, flow.rp, state="pushed-state")
    response = authorize_with(
        flow.http, flow.rp.client_id, request_uri,
        redirect_uri="https://evil.example.com/cb", state="front-state", prompt="none",
        scope="openid offline_access",
    )  # fmt: skip
    answer = client_redirect(response)
    assert answer["state"] == "pushed-state"
    assert "code" in answer


def test_request_uri_is_single_use(flow: Flow) -> None:
    request_uri = pushed_uri(flow.http, flow.rp)
    assert "code" in client_redirect(authorize_with(flow.http, flow.rp.client_id, request_uri))
    again = authorize_with(flow.http, flow.rp.client_id, request_uri)
    assert again.status_code == 400
    assert b"unknown or was used already" in again.content


def test_unknown_request_uri_is_an_error_page(flow: Flow) -> None:
    # RFC 6749 §4.1.2.1: no redirect URI is known, so nothing is sent to the client
    for request_uri in (URN_PREFIX + "x" * 43, URN_PREFIX, URN_PREFIX + "y" * 5000):
        response = authorize_with(flow.http, flow.rp.client_id, request_uri)
        assert response.status_code == 400, request_uri
        assert "Location" not in response


def test_expired_request_uri_goes_back_to_the_client(flow: Flow) -> None:
    # RFC 9126 §2.2 expires_in: the record is still there (its grace), its expiry past
    request_uri = pushed_uri(flow.http, flow.rp)
    key = KEY + request_uri.removeprefix(URN_PREFIX)
    record = json.loads(get_redis().get(key))
    record["expires_at"] = time.time() - 1
    get_redis().set(key, json.dumps(record), keepttl=True)
    answer = client_redirect(authorize_with(flow.http, flow.rp.client_id, request_uri))
    assert answer["error"] == "invalid_request_uri"
    assert "expired" in answer["error_description"]
    assert answer["state"] == STATE
    assert answer["iss"] == settings.ISSUER
    assert get_redis().get(key) is None  # spent all the same


def test_another_clients_request_uri_is_refused_and_spent(flow: Flow, register) -> None:
    # RFC 9126 §4: the request_uri is bound to the client that pushed it
    other = register()
    request_uri = pushed_uri(flow.http, flow.rp)
    response = authorize_with(flow.http, other.client_id, request_uri)
    assert response.status_code == 400
    assert "Location" not in response
    assert b"another application" in response.content
    retry = authorize_with(flow.http, flow.rp.client_id, request_uri)
    assert retry.status_code == 400  # a request_uri shown to the wrong client is gone


def test_request_uri_without_client_id_is_refused(flow: Flow) -> None:
    request_uri = pushed_uri(flow.http, flow.rp)
    response = flow.http.get(AUTHORIZE, {"request_uri": request_uri})
    assert response.status_code == 400
    assert b"client_id is required" in response.content


def test_forged_carried_parameters_are_refused(flow: Flow) -> None:
    response = flow.http.get(
        AUTHORIZE, {"client_id": flow.rp.client_id, PUSHED_PARAM: "eyJmb28iOiJiYXIifQ:forged"}
    )
    assert response.status_code == 400
    assert b"has expired" in response.content


def test_sign_in_round_trip_resumes_the_pushed_request_without_its_request_uri(
    client: HttpClient, person, register
) -> None:
    # the spent request_uri is not needed again: the sign-in page leads back to the pushed
    # parameters, signed; with PAR required, that resumed request counts as pushed
    rp = register(require_par=True)
    pkce = new_pkce()
    request_uri = pushed_uri(client, rp, pkce)
    to_login = authorize_with(client, rp.client_id, request_uri)
    assert to_login.status_code == 302
    next_url = parse_qs(urlsplit(to_login["Location"]).query)["next"][0]
    resumed = parse_qs(urlsplit(next_url).query)
    assert "request_uri" not in resumed
    assert set(resumed) == {"client_id", PUSHED_PARAM, "tessera_login_after"}
    assert REDIRECT_URI not in next_url  # not in plain sight
    assert STATE not in next_url

    force_sign_in(client, person)
    consent_page = client.get(next_url)
    assert consent_page.status_code == 200, consent_page.content[:300]
    blob = re.search(r'name="request" value="([^"]+)"', consent_page.content.decode())
    assert blob is not None
    answer = client_redirect(
        client.post("/oauth/authorize/consent", {"request": blob.group(1), "decision": "allow"})
    )
    assert answer["state"] == STATE
    response = Flow(client, rp).exchange(answer["code"], pkce.verifier)
    assert response.status_code == 200, response.content


# --- PAR required (RFC 9126 §5, §6) --------------------------------------------------------


def test_client_requiring_par_refuses_an_unpushed_request(signed_in, register) -> None:
    rp = register(require_par=True)
    answer = query_of(Flow(signed_in, rp).authorize()["Location"])
    assert answer["error"] == "invalid_request"
    assert answer["error_description"] == PAR_REQUIRED
    assert answer["state"] == STATE


def test_client_requiring_par_accepts_a_pushed_request(signed_in, person, register) -> None:
    rp = register(require_par=True)
    client = Client.objects.get(client_id=rp.client_id)
    consent_grant(user_id=person.pk, client=client, scopes=["openid", "profile", "email"])
    request_uri = pushed_uri(signed_in, rp)
    assert "code" in client_redirect(authorize_with(signed_in, rp.client_id, request_uri))


def test_server_requiring_par_refuses_unpushed_requests_and_says_so(flow: Flow) -> None:
    with override_settings(REQUIRE_PAR=True):
        views._metadata.cache_clear()
        try:
            metadata = flow.http.get("/.well-known/openid-configuration").json()
            answer = query_of(flow.authorize()["Location"])
            request_uri = pushed_uri(flow.http, flow.rp)
            pushed = client_redirect(authorize_with(flow.http, flow.rp.client_id, request_uri))
        finally:
            views._metadata.cache_clear()
    assert metadata["require_pushed_authorization_requests"] is True
    assert answer["error"] == "invalid_request"
    assert answer["error_description"] == PAR_REQUIRED
    assert "code" in pushed


def test_discovery_publishes_the_endpoint(client) -> None:
    metadata = client.get("/.well-known/openid-configuration").json()
    assert metadata["pushed_authorization_request_endpoint"] == settings.ISSUER + PAR
    assert metadata["require_pushed_authorization_requests"] is False


# --- the other round trips carry the pushed request too -----------------------------------


def test_step_up_round_trip_carries_the_pushed_request(signed_in, person, register) -> None:
    # check_acr's redirect to the second factor leads back to the pushed parameters
    rp = register(require_mfa=True)
    client = Client.objects.get(client_id=rp.client_id)
    consent_grant(user_id=person.pk, client=client, scopes=["openid", "profile", "email"])
    response = authorize_with(signed_in, rp.client_id, pushed_uri(signed_in, rp))
    assert response.status_code == 302, response.content[:300]
    location = parse_qs(urlsplit(response["Location"]).query)
    assert location["step_up"] == ["urn:tessera:acr:mfa"]
    resumed = parse_qs(urlsplit(location["next"][0]).query)
    assert set(resumed) == {"client_id", PUSHED_PARAM, "tessera_step_up"}


def test_switch_account_drops_the_login_hint_inside_the_pushed_request(flow: Flow) -> None:
    request_uri = pushed_uri(flow.http, flow.rp, prompt="consent", login_hint="ada@example.com")
    consent_page = authorize_with(flow.http, flow.rp.client_id, request_uri)
    blob = re.search(r'name="request" value="([^"]+)"', consent_page.content.decode())
    assert blob is not None
    response = flow.http.post(
        "/oauth/authorize/consent", {"request": blob.group(1), "decision": "switch_account"}
    )
    assert response.status_code == 302
    next_url = parse_qs(urlsplit(response["Location"]).query)["next"][0]
    carried = parse_qs(urlsplit(next_url).query)[PUSHED_PARAM][0]
    pushed = pushed_open(carried, max_age=60)
    assert pushed is not None
    assert "login_hint" not in pushed
    assert pushed["prompt"] == "consent"
    assert "login_hint" not in response["Location"]


# --- Redis unreachable: fail closed, never a 500 ------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Any, settings: Any) -> Any:
    """A Redis of this test's own as the application's (the suite's stays up for others)."""
    server = Redis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url(0)  # apps.core.redis.get_redis() follows it
    yield server
    server.stop(signal.SIGKILL)


def test_redis_down_refuses_pushes_and_request_uris_with_503(flow: Flow, own_redis: Any) -> None:
    request_uri = pushed_uri(flow.http, flow.rp)
    own_redis.stop(signal.SIGKILL)
    pushed = push(flow.http, flow.rp)
    taken = authorize_with(flow.http, flow.rp.client_id, request_uri)
    assert refusal(pushed, 503)["error"] == "temporarily_unavailable"
    assert taken.status_code == 503
    assert "Try again in a moment" in taken.content.decode()


def test_the_carried_pushed_request_is_sealed_not_readable_nor_alterable(flow: Flow) -> None:
    # RFC 9126 §1: the request's contents stay out of the front channel. The browser carries
    # them through the sign-in and consent round trips sealed under the key-encryption key.
    request_uri = pushed_uri(flow.http, flow.rp, prompt="consent", login_hint="ada@example.com")
    consent_page = authorize_with(flow.http, flow.rp.client_id, request_uri)
    blob = re.search(r'name="request" value="([^"]+)"', consent_page.content.decode())
    assert blob is not None
    response = flow.http.post(
        "/oauth/authorize/consent", {"request": blob.group(1), "decision": "switch_account"}
    )
    next_url = parse_qs(urlsplit(response["Location"]).query)["next"][0]
    carried = parse_qs(urlsplit(next_url).query)[PUSHED_PARAM][0]
    assert "consent" not in carried
    assert "ada@example.com" not in carried
    kek, _, body = carried.partition(".")
    altered = f"{kek}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}"
    assert pushed_open(altered, max_age=60) is None
    assert pushed_open(carried, max_age=60) is not None
