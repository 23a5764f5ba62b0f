"""Every way a token row goes away puts its JWT on the revocation list: a JWT outlives its
row, so without the list it would stay valid until it expires."""

from __future__ import annotations

import pytest

from apps.core import revocation
from apps.tokens.models import AccessToken, Client
from apps.tokens.validation import InvalidToken, validate_access_token
from tests.tokens.conftest import Flow

pytestmark = pytest.mark.django_db


def _issued(flow: Flow) -> tuple[str, AccessToken]:
    token = flow.tokens()["access_token"]
    return token, AccessToken.objects.get(jti=validate_access_token(token)["jti"])


def test_dot_revoke_lists_the_jti(flow: Flow) -> None:
    # django-oauth-toolkit's revoke() (its admin's revoke action) only deletes the row
    token, row = _issued(flow)
    row.revoke()
    assert not AccessToken.objects.filter(pk=row.pk).exists()
    assert revocation.is_revoked(jti=row.jti, sid=None)
    with pytest.raises(InvalidToken):
        validate_access_token(token)


def test_deleting_a_client_revokes_its_tokens(flow: Flow) -> None:
    token, _ = _issued(flow)
    Client.objects.get(client_id=flow.rp.client_id).delete()
    with pytest.raises(InvalidToken):
        validate_access_token(token)
