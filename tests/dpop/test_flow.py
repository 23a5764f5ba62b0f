"""DPoP through the code flow (RFC 9449 §5, §10), refresh (§5, public clients' refresh tokens
bound), userinfo (§7) and the admin API, driven through Django's test client."""

from __future__ import annotations

import signal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from django.test import Client as HttpClient

from apps.tokens import dpop
from apps.tokens.models import Client, Grant
from apps.tokens.services import client_create, consent_grant
from tests.console.conftest import operator  # noqa: F401 (its fixture)
from tests.dpop.conftest import (
    PAR,
    PAR_URL,
    TOKEN_URL,
    USERINFO,
    USERINFO_URL,
    DPoPKey,
    bound_tokens,
    claims_of,
    dpop_userinfo,
    error_of,
    exchange,
    require_dpop,
    token_post,
)
from tests.rp import REDIRECT_URI, RegisteredClient
from tests.servers import Redis
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import SCOPE, Flow, authorize_params, basic, client_redirect, new_pkce

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"


def _challenge(response: Any) -> str:
    return str(response["WWW-Authenticate"])


def _refresh(http: HttpClient, rp: RegisteredClient, refresh_token: str, proof: str | None) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return token_post(http, data, rp=rp, proof=proof)


@pytest.fixture
def public_flow(signed_in: HttpClient, register: Any, person: Any) -> Flow:
    """A public client (a single-page or native app) `person` already allowed."""
    rp = register(public=True, grant_types=["authorization_code", "refresh_token"])
    client = Client.objects.get(client_id=rp.client_id)
    consent_grant(user_id=person.pk, client=client, scopes=SCOPE.split())
    return Flow(signed_in, rp)


# --- the token endpoint --------------------------------------------------------------------


def test_the_code_exchange_with_a_proof_binds_the_access_token(flow: Flow, key: DPoPKey) -> None:
    tokens = bound_tokens(flow, key)

    assert tokens["token_type"] == "DPoP"
    assert claims_of(tokens["access_token"])["cnf"] == {"jkt": key.jkt}
    # the ID token is not bound: it is no access credential (RFC 9449 §6)
    assert "cnf" not in claims_of(tokens["id_token"])
    introspected = flow.http.post(
        "/oauth/introspect",
        {"token": tokens["access_token"]},
        headers={"Authorization": basic(flow.rp.client_id, flow.rp.client_secret or "")},
    ).json()
    assert introspected["active"] is True
    assert introspected["cnf"] == {"jkt": key.jkt}  # RFC 9449 §6.2


def test_a_confidential_clients_refresh_binds_the_new_token_to_the_new_proof(
    flow: Flow, key: DPoPKey
) -> None:
    # RFC 9449 §5 / §5.2: a confidential client's refresh token is bound to its
    # authentication, not to a key; the access token follows the refresh request's proof
    tokens = bound_tokens(flow, key)
    other = DPoPKey()

    refreshed = _refresh(flow.http, flow.rp, tokens["refresh_token"], other.proof())

    assert refreshed.status_code == 200, refreshed.content
    assert claims_of(refreshed.json()["access_token"])["cnf"] == {"jkt": other.jkt}


def test_a_public_clients_refresh_token_is_bound_to_its_key(
    public_flow: Flow, key: DPoPKey
) -> None:
    # RFC 9449 §5: a public client's refresh token is usable only with a proof of the key it
    # was issued with
    tokens = bound_tokens(public_flow, key)
    rp = public_flow.rp

    another_key = _refresh(public_flow.http, rp, tokens["refresh_token"], DPoPKey().proof())
    assert another_key.status_code == 400
    assert error_of(another_key) == "invalid_grant"
    assert "another key" in another_key.json()["error_description"]

    no_proof = _refresh(public_flow.http, rp, tokens["refresh_token"], None)
    assert no_proof.status_code == 400
    assert error_of(no_proof) == "invalid_grant"

    same_key = _refresh(public_flow.http, rp, tokens["refresh_token"], key.proof())
    assert same_key.status_code == 200, same_key.content
    assert same_key.json()["token_type"] == "DPoP"
    assert claims_of(same_key.json()["access_token"])["cnf"] == {"jkt": key.jkt}
    # the rotated refresh token is bound to the same key
    again = _refresh(public_flow.http, rp, same_key.json()["refresh_token"], DPoPKey().proof())
    assert error_of(again) == "invalid_grant"


def test_a_client_that_requires_dpop_cannot_exchange_a_code_without_a_proof(
    flow: Flow, key: DPoPKey
) -> None:
    require_dpop(flow.rp)
    pkce = new_pkce()

    refused = exchange(flow, flow.code(pkce), pkce.verifier, None)

    assert refused.status_code == 400
    assert error_of(refused) == "invalid_request"
    assert bound_tokens(flow, key)["token_type"] == "DPoP"


# --- dpop_jkt: the code bound to a key (RFC 9449 §10) ---------------------------------------


def test_a_code_asked_for_with_dpop_jkt_is_redeemed_only_with_that_key(
    flow: Flow, key: DPoPKey
) -> None:
    pkce = new_pkce()
    code = flow.code(pkce, dpop_jkt=key.jkt)
    assert Grant.objects.get(code=code).dpop_jkt == key.jkt

    stolen = exchange(flow, code, pkce.verifier, DPoPKey().proof())

    assert stolen.status_code == 400
    assert error_of(stolen) == "invalid_grant"
    assert "dpop_jkt" in stolen.json()["error_description"]
    # the failed exchange spent the code: not even the right key redeems it now
    assert error_of(exchange(flow, code, pkce.verifier, key.proof())) == "invalid_grant"


def test_a_dpop_jkt_code_is_refused_without_a_proof_and_redeemed_with_one(
    flow: Flow, key: DPoPKey
) -> None:
    pkce = new_pkce()
    refused = exchange(flow, flow.code(pkce, dpop_jkt=key.jkt), pkce.verifier, None)
    assert error_of(refused) == "invalid_grant"

    pkce = new_pkce()
    redeemed = exchange(flow, flow.code(pkce, dpop_jkt=key.jkt), pkce.verifier, key.proof())
    assert redeemed.status_code == 200, redeemed.content
    assert claims_of(redeemed.json()["access_token"])["cnf"] == {"jkt": key.jkt}


@pytest.mark.parametrize(
    "dpop_jkt", ["short", "x" * 44, "not/base64url/at/all/not/base64url/at/all/a"]
)
def test_a_malformed_dpop_jkt_is_invalid_request(flow: Flow, dpop_jkt: str) -> None:
    answer = client_redirect(flow.authorize(dpop_jkt=dpop_jkt))

    assert answer["error"] == "invalid_request"
    assert "dpop_jkt" in answer["error_description"]


def _push(
    http: HttpClient, rp: RegisteredClient, proof: str | None, pkce: Any = None, **extra: str
) -> Any:
    """RFC 9126 §2.1: the parameters form-encoded, the client authenticated."""
    params = authorize_params(rp.client_id, pkce or new_pkce(), **extra)
    headers = {"Authorization": basic(rp.client_id, rp.client_secret or "")}
    if proof is not None:
        headers["DPoP"] = proof
    return http.post(PAR, urlencode(params), content_type=FORM, headers=headers)


def test_a_dpop_proof_at_par_binds_the_code(flow: Flow, key: DPoPKey) -> None:
    # RFC 9449 §10.1: the proof at the pushed request does what dpop_jkt does
    pkce = new_pkce()
    pushed = _push(flow.http, flow.rp, key.proof("POST", PAR_URL), pkce)
    assert pushed.status_code == 201, pushed.content
    assert pushed["DPoP-Nonce"] == dpop.current_nonce()
    answer = client_redirect(
        flow.http.get(
            "/oauth/authorize",
            {"client_id": flow.rp.client_id, "request_uri": pushed.json()["request_uri"]},
        )
    )
    assert Grant.objects.get(code=answer["code"]).dpop_jkt == key.jkt

    stolen = exchange(flow, answer["code"], pkce.verifier, DPoPKey().proof())
    assert error_of(stolen) == "invalid_grant"


def test_par_refuses_a_dpop_jkt_of_another_key_than_its_proof(flow: Flow, key: DPoPKey) -> None:
    response = _push(flow.http, flow.rp, key.proof("POST", PAR_URL), dpop_jkt=DPoPKey().jkt)

    assert response.status_code == 400
    assert error_of(response) == "invalid_dpop_proof"


def test_par_asks_for_a_nonce_and_refuses_a_proof_of_the_token_endpoint(
    flow: Flow, key: DPoPKey
) -> None:
    no_nonce = _push(flow.http, flow.rp, key.proof("POST", PAR_URL, nonce=None))
    assert no_nonce.status_code == 400
    assert error_of(no_nonce) == "use_dpop_nonce"
    assert no_nonce["DPoP-Nonce"] == dpop.current_nonce()

    wrong_endpoint = _push(flow.http, flow.rp, key.proof("POST", TOKEN_URL))
    assert error_of(wrong_endpoint) == "invalid_dpop_proof"


# --- userinfo (RFC 9449 §7) ----------------------------------------------------------------


def test_userinfo_answers_a_dpop_bound_token_with_its_proof(
    flow: Flow, key: DPoPKey, person
) -> None:
    token = bound_tokens(flow, key)["access_token"]

    response = dpop_userinfo(flow.http, token, key.proof("GET", USERINFO_URL, access_token=token))

    assert response.status_code == 200, response.content
    assert response.json()["sub"] == str(person.pk)
    assert response["DPoP-Nonce"] == dpop.current_nonce()
    # POST works as GET does, with htm POST (OIDC Core §5.3.1)
    posted = flow.http.post(
        USERINFO,
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": key.proof("POST", USERINFO_URL, access_token=token),
        },
    )
    assert posted.status_code == 200, posted.content


def test_a_dpop_bound_token_sent_as_bearer_is_invalid_token(flow: Flow, key: DPoPKey) -> None:
    # RFC 9449 §7.2: a downgrade to Bearer is refused, with or without a proof alongside
    token = bound_tokens(flow, key)["access_token"]

    for proof in (None, key.proof("GET", USERINFO_URL, access_token=token)):
        headers = {"Authorization": f"Bearer {token}"}
        if proof:
            headers["DPoP"] = proof
        response = flow.http.get(USERINFO, headers=headers)
        assert response.status_code == 401
        assert 'error="invalid_token"' in _challenge(response)
        assert "DPoP" in response.json()["error_description"]


def _userinfo_cases(key: DPoPKey, token: str) -> dict[str, tuple[str | None, str, str]]:
    """case: (the DPoP header, the error, what its description says)"""
    good = {"access_token": token}
    return {
        "no proof": (None, "invalid_dpop_proof", "needs a DPoP proof"),
        "no ath": (key.proof("GET", USERINFO_URL), "invalid_dpop_proof", "no ath"),
        "ath of another token": (
            key.proof("GET", USERINFO_URL, access_token=token + "x"),
            "invalid_dpop_proof", "ath is not",
        ),
        "ath not a string": (
            key.proof("GET", USERINFO_URL, ath=5), "invalid_dpop_proof", "no ath",
        ),
        "proof of the token endpoint": (
            key.proof("GET", TOKEN_URL, **good), "invalid_dpop_proof", "htu is not",
        ),
        "wrong htm": (key.proof("POST", USERINFO_URL, **good), "invalid_dpop_proof", "htm"),
        "no nonce": (
            key.proof("GET", USERINFO_URL, nonce=None, **good), "use_dpop_nonce", "nonce",
        ),
        "stale nonce": (
            key.proof("GET", USERINFO_URL, nonce="old", **good), "use_dpop_nonce", "nonce",
        ),
        "another key": (
            DPoPKey().proof("GET", USERINFO_URL, **good), "invalid_token", "another key",
        ),
        "two proofs": (
            f"{key.proof('GET', USERINFO_URL, **good)}, {key.proof('GET', USERINFO_URL, **good)}",
            "invalid_dpop_proof", "exactly one",
        ),
    }  # fmt: skip


CASES = list(_userinfo_cases(DPoPKey(), "t"))


@pytest.mark.parametrize("case", CASES)
def test_userinfo_refuses_a_bad_proof_with_a_dpop_challenge(
    flow: Flow, key: DPoPKey, case: str
) -> None:
    token = bound_tokens(flow, key)["access_token"]
    proof, error, reason = _userinfo_cases(key, token)[case]

    response = dpop_userinfo(flow.http, token, proof)

    assert response.status_code == 401, response.content
    challenge = _challenge(response)
    assert challenge.startswith("DPoP realm="), challenge  # RFC 9449 §7.1
    assert f'error="{error}"' in challenge
    assert f'algs="{" ".join(django_settings.DPOP_SIGNING_ALGS)}"' in challenge
    assert reason in response.json()["error_description"], response.json()
    if error == "use_dpop_nonce" or proof is not None:
        assert response["DPoP-Nonce"] == dpop.current_nonce()  # §9


def test_a_replayed_userinfo_proof_is_refused(flow: Flow, key: DPoPKey) -> None:
    token = bound_tokens(flow, key)["access_token"]
    proof = key.proof("GET", USERINFO_URL, access_token=token)
    assert dpop_userinfo(flow.http, token, proof).status_code == 200

    replayed = dpop_userinfo(flow.http, token, proof)

    assert replayed.status_code == 401
    assert 'error="invalid_dpop_proof"' in _challenge(replayed)


def test_userinfo_without_credentials_offers_both_schemes(client: HttpClient) -> None:
    # RFC 9449 §7.1: a resource accepting DPoP says so, with the algorithms, in its challenge
    response = client.get(USERINFO)

    assert response.status_code == 401
    challenge = _challenge(response)
    assert challenge.startswith("Bearer realm=")
    assert "DPoP realm=" in challenge
    assert "algs=" in challenge
    assert "error=" not in challenge


def test_an_unbound_token_still_works_as_bearer(flow: Flow) -> None:
    token = flow.tokens()["access_token"]

    response = flow.http.get(USERINFO, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert "DPoP-Nonce" not in response


def test_discovery_names_the_proof_algorithms(client: HttpClient) -> None:
    metadata = client.get("/.well-known/openid-configuration").json()

    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "PS256", "RS256"]


# --- the admin API -------------------------------------------------------------------------


def _admin_token(user: Any, key: DPoPKey) -> str:
    """An admin-scoped access token bound to `key`, through the code flow of a first-party
    client (tests/console/conftest.py access_token, with a DPoP proof at the exchange)."""
    client, secret = client_create(
        name="Ops tool", redirect_uris=[REDIRECT_URI], grant_types=["authorization_code"],
        skip_consent=True,
    )  # fmt: skip
    consent_grant(user_id=user.pk, client=client, scopes=["openid", "admin"])
    http = HttpClient()
    force_sign_in(http, user)
    tokens = bound_tokens(
        Flow(http, RegisteredClient(client.client_id, secret)), key, scope="openid admin"
    )
    return str(tokens["access_token"])


def test_the_admin_api_accepts_a_dpop_bound_token_with_its_proof(operator, key) -> None:  # noqa: F811
    token = _admin_token(operator, key)
    url = django_settings.ISSUER + "/api/v1/sessions"
    http = HttpClient()

    ok = http.get(
        "/api/v1/sessions",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": key.proof("GET", url, access_token=token, nonce=None),
        },
    )
    assert ok.status_code == 200, ok.content

    as_bearer = http.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 401
    assert 'error="invalid_token"' in _challenge(as_bearer)

    no_ath = http.get(
        "/api/v1/sessions",
        headers={"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", url)},
    )
    assert no_ath.status_code == 401
    assert _challenge(no_ath).startswith("DPoP realm=")
    assert 'error="invalid_dpop_proof"' in _challenge(no_ath)

    another_key = http.get(
        "/api/v1/sessions",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": DPoPKey().proof("GET", url, access_token=token),
        },
    )
    assert another_key.status_code == 401
    assert 'error="invalid_token"' in _challenge(another_key)


# --- the replay cache unreachable: fail closed --------------------------------------------


@pytest.fixture
def own_redis(tmp_path, settings) -> Any:
    """A Redis of this test's own as the application's (the suite's stays up for others)."""
    server = Redis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url(0)  # apps.core.redis.get_redis() follows it
    yield server
    server.stop(signal.SIGKILL)


def test_with_redis_down_no_proof_is_accepted(flow: Flow, key: DPoPKey, own_redis) -> None:
    token = bound_tokens(flow, key)["access_token"]
    pkce = new_pkce()
    code = flow.code(pkce)
    own_redis.stop(signal.SIGKILL)

    userinfo = dpop_userinfo(flow.http, token, key.proof("GET", USERINFO_URL, access_token=token))
    assert userinfo.status_code == 503
    assert "replay" in userinfo.json()["error_description"]

    exchanged = exchange(flow, code, pkce.verifier, key.proof())
    assert exchanged.status_code == 503, exchanged.content
    assert exchanged.json()["error"] == "temporarily_unavailable"
    assert "replay" in exchanged.json()["error_description"]


def test_with_redis_down_the_admin_api_takes_no_proof(operator, key, own_redis) -> None:  # noqa: F811
    token = _admin_token(operator, key)
    url = django_settings.ISSUER + "/api/v1/sessions"
    own_redis.stop(signal.SIGKILL)

    response = HttpClient().get(
        "/api/v1/sessions",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": key.proof("GET", url, access_token=token, nonce=None),
        },
    )

    assert response.status_code == 503, response.content
    assert "replay" in response.json()["detail"]
