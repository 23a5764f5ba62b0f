"""While this process's mirror of the revocation list is not current (Redis unreachable), a
token that passes every other check is still refused (fail closed), but as 503
temporarily_unavailable with Retry-After (RFC 9110 §15.6.4), at userinfo, introspection and
the admin API (apps/tokens/validation.py RevocationStatusUnknown). Not 401 invalid_token: the
token is not known bad (RFC 6750 §3.1), and a relying party's library would drop it and send
the person to sign in again. Not {"active": false}: RFC 7662 §2.2's `active` says the token
was not revoked, which is unknown, and a resource server may cache the answer (§4)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client as HttpClient

from apps.core import revocation
from apps.sessions.services import session_start
from apps.tokens.claims import access_token_claims, sign
from apps.tokens.clients_admin import client_disable
from apps.tokens.models import Client
from apps.tokens.validation import RevocationStatusUnknown, validate_access_token
from tests.conftest import redis_start_again
from tests.servers import wait_for
from tests.tokens.conftest import INTROSPECT, TOKEN, Flow, b64url, form_post, userinfo

pytestmark = pytest.mark.django_db

REVOKE = "/oauth/revoke"


def _admin_token(person, client_id: str) -> str:
    """An access token of `client_id` with the admin scope for `person`, made staff (as the
    token endpoint issues it: claims + sign)."""
    person.is_staff, person.staff_role = True, "administrator"
    person.save(update_fields=["is_staff", "staff_role"])
    claims = access_token_claims(
        client_id=client_id, user=person, scopes=["openid", "admin"],
        session=session_start(user=person, amr=["pwd"]),
        audience=[settings.ACCESS_TOKEN_AUDIENCE], refreshed=False,
    )  # fmt: skip
    return sign(claims, alg=settings.ACCESS_TOKEN_ALG, typ="at+jwt")


def _unavailable(answer) -> None:
    assert answer.status_code == 503, answer.content[:300]
    assert answer["Retry-After"] == str(RevocationStatusUnknown.retry_after)
    assert answer.json()["error"] == "temporarily_unavailable"
    assert "WWW-Authenticate" not in answer  # no challenge: the token was not found bad
    assert "active" not in answer.json()


def test_an_unknown_revocation_status_is_503_with_retry_after_and_200_once_redis_returns(
    flow: Flow, person, servers, settings, register
) -> None:
    token = flow.tokens()["access_token"]
    machine = register(grant_types=["client_credentials"])
    issued = form_post(flow.http, TOKEN, {"grant_type": "client_credentials"}, auth=machine)
    unstored = issued.json()["access_token"]  # no row: only its revocation listing ends it
    bearer = _admin_token(person, flow.rp.client_id)
    admin = HttpClient(headers={"Authorization": f"Bearer {bearer}"})
    users = "/api/v1/users?email=ada@example.com"
    assert userinfo(flow.http, token).status_code == 200
    assert admin.get(users).status_code == 200
    header, payload, _ = token.split(".")
    forged = f"{header}.{payload}.{b64url(bytes(64))}"
    retired = register(grant_types=["client_credentials"])
    of_retired = form_post(
        flow.http, TOKEN, {"grant_type": "client_credentials"}, auth=retired
    ).json()["access_token"]
    client_disable(client=Client.objects.get(client_id=retired.client_id), actor_id=None)

    servers.redis.stop()
    try:
        wait_for(lambda: not revocation._mirror.current.is_set(), 5, "the mirror did not notice")
        with pytest.raises(RevocationStatusUnknown):
            validate_access_token(token)
        _unavailable(userinfo(flow.http, token))
        _unavailable(form_post(flow.http, INTROSPECT, {"token": token}, auth=flow.rp))
        _unavailable(admin.get(users))
        # RFC 7009 §2.2.1: on a 503 "the client must assume the token still exists", which
        # it does: a 200 here would say it was revoked while it was not.
        _unavailable(form_post(flow.http, REVOKE, {"token": unstored}, auth=machine))
        # A token known bad is still said to be bad.
        assert userinfo(flow.http, forged).status_code == 401
        # So is one of a disabled client: revocation is the last check, the only one that
        # can answer "unknown".
        refused = form_post(flow.http, INTROSPECT, {"token": of_retired}, auth=flow.rp)
        assert refused.json() == {"active": False}
        assert form_post(flow.http, INTROSPECT, {"token": forged}, auth=flow.rp).json() == {
            "active": False
        }
        # IDP_REVOCATION_FAIL_OPEN is unchanged: the token is accepted meanwhile.
        settings.REVOCATION_FAIL_OPEN = True
        assert userinfo(flow.http, token).status_code == 200
        settings.REVOCATION_FAIL_OPEN = False
    finally:
        redis_start_again(servers)
    wait_for(lambda: revocation._mirror.current.is_set(), 10, "the mirror did not recover")

    assert userinfo(flow.http, token).status_code == 200
    assert form_post(flow.http, INTROSPECT, {"token": token}, auth=flow.rp).json()["active"]
    assert admin.get(users).status_code == 200
