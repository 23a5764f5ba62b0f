"""Token lifetimes and per-client ID-token algorithms."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from django.utils import timezone

from apps.keys import keys
from apps.tokens.models import RefreshToken
from apps.tokens.services import client_create
from tests.rp import REDIRECT_URI, new_verifier
from tests.signin.browser import force_sign_in

pytestmark = pytest.mark.django_db


def _tokens(client, person, registered, secret) -> dict:
    verifier = new_verifier()
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    force_sign_in(client, person)  # a login session, as the hosted page opens one
    query = {
        "response_type": "code", "client_id": registered.client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    location = client.get(f"/oauth/authorize?{urlencode(query)}")["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    response = client.post(
        "/oauth/token",
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
         "code_verifier": verifier, "client_id": registered.client_id, "client_secret": secret},
    )  # fmt: skip
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def first_party():
    client, secret = client_create(
        name="First party", redirect_uris=[REDIRECT_URI], skip_consent=True, id_token_alg="ES256"
    )
    return client, secret


def test_id_token_uses_the_clients_registered_algorithm(client, person, first_party) -> None:
    # OIDC Dynamic Client Registration 1.0 §2: id_token_signed_response_alg.
    registered, secret = first_party
    tokens = _tokens(client, person, registered, secret)

    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == "ES256"
    key = keys.verification_key(header["kid"])
    assert key is not None
    claims = jwt.decode(
        tokens["id_token"], key.public_key, algorithms=["ES256"], audience=registered.client_id
    )
    assert claims["sub"] == str(person.pk)
    assert "email" not in claims  # OIDC Core §5.4: scope openid alone releases no profile
    assert "name" not in claims


def test_refresh_tokens_die_at_their_absolute_lifetime_however_often_rotated(
    client, person, first_party
) -> None:
    registered, secret = first_party
    tokens = _tokens(client, person, registered, secret)
    stored = RefreshToken.objects.get(revoked__isnull=True)
    assert stored.family_expires_at - timezone.now() > timedelta(days=6, hours=23)

    RefreshToken.objects.filter(pk=stored.pk).update(
        family_expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client.post(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
         "client_id": registered.client_id, "client_secret": secret},
    )  # fmt: skip

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
