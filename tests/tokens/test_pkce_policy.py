"""PKCE S256 on every authorization request (RFC 9700 §2.1.1), but for a confidential client
registered --allow-no-pkce, whose library cannot do PKCE: its codes are bound by the ID token's
nonce instead, so the nonce is required (mozilla-django-oidc's default configuration)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.tokens.models import Client
from apps.tokens.services import consent_grant
from tests.tokens.conftest import SCOPE, Flow, client_redirect, new_pkce, verify_id_token

pytestmark = pytest.mark.django_db
NO_PKCE: dict[str, str | None] = {"code_challenge": None, "code_challenge_method": None}


@pytest.fixture
def no_pkce_flow(signed_in, register, person) -> Flow:
    rp = register(require_pkce=False)
    consent_grant(
        user_id=person.pk, client=Client.objects.get(client_id=rp.client_id), scopes=SCOPE.split()
    )
    return Flow(signed_in, rp)


def test_a_client_registered_without_pkce_signs_in_with_a_nonce(no_pkce_flow: Flow) -> None:
    answer = client_redirect(no_pkce_flow.authorize(**NO_PKCE))
    response = no_pkce_flow.exchange(answer["code"], verifier=None)

    assert response.status_code == 200, response.content
    claims = verify_id_token(response.json()["id_token"], no_pkce_flow.rp.client_id)
    assert claims["nonce"] == "n-0S6_WzA2Mj"


def test_a_client_registered_without_pkce_must_send_a_nonce(no_pkce_flow: Flow) -> None:
    answer = client_redirect(no_pkce_flow.authorize(**NO_PKCE, nonce=None))
    assert answer["error"] == "invalid_request"
    assert "nonce" in answer["error_description"]


def test_a_challenge_sent_anyway_is_still_enforced(no_pkce_flow: Flow) -> None:
    pkce = new_pkce()
    code = no_pkce_flow.code(pkce)
    response = no_pkce_flow.exchange(code, verifier=new_pkce().verifier)
    assert response.json()["error"] == "invalid_grant"
    plain = client_redirect(no_pkce_flow.authorize(pkce, code_challenge_method="plain"))
    assert plain["error"] == "invalid_request"


def test_every_other_client_must_use_pkce(flow: Flow) -> None:
    answer = client_redirect(flow.authorize(**NO_PKCE))
    assert answer["error"] == "invalid_request"
    assert "challenge" in answer["error_description"].lower()


def test_a_public_client_cannot_be_registered_without_pkce(register) -> None:
    with pytest.raises(ValidationError, match="public client must use PKCE"):
        register(public=True, require_pkce=False)
