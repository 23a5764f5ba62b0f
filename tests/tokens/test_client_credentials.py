"""client_credentials tokens are stored nowhere; revocation and introspection still work."""

from __future__ import annotations

import base64

import pytest

from apps.tokens.models import AccessToken
from apps.tokens.services import client_create

pytestmark = pytest.mark.django_db


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
def job():
    client, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    return client.client_id, secret


def _token(client, job) -> str:
    response = client.post(
        "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=_basic(*job)
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def _active(client, job, token: str) -> bool:
    response = client.post("/oauth/introspect", {"token": token}, HTTP_AUTHORIZATION=_basic(*job))
    return response.json()["active"]


def test_client_credentials_token_leaves_no_row_and_introspects_active(client, job) -> None:
    token = _token(client, job)

    assert not AccessToken.objects.exists()
    assert _active(client, job, token) is True


def test_issuing_client_revokes_its_client_credentials_token(client, job) -> None:
    # RFC 7009 §2.1
    token = _token(client, job)

    response = client.post("/oauth/revoke", {"token": token}, HTTP_AUTHORIZATION=_basic(*job))

    assert response.status_code == 200
    assert _active(client, job, token) is False


def test_another_client_cannot_revoke_it(client, job) -> None:
    # RFC 7009 §2.1: the server verifies the token was issued to the revoking client.
    other_client, other_secret = client_create(
        name="Other", redirect_uris=[], grant_types=["client_credentials"]
    )
    token = _token(client, job)

    response = client.post(
        "/oauth/revoke",
        {"token": token},
        HTTP_AUTHORIZATION=_basic(other_client.client_id, other_secret),
    )

    assert response.status_code == 200  # §2.2: no hint either way
    assert _active(client, job, token) is True
