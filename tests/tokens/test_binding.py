"""The one road of sender-constrained tokens (apps/tokens/binding.py): what a token's `cnf`
says, and how validation compares it with what a request proves (RFC 8705 §3, RFC 9449 §7).
The token endpoint's and resources' producers are tested in tests/mtls and tests/dpop."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from apps.tokens.binding import JKT, UNBOUND, UNPRESENTABLE, X5T_S256, Binding, mismatch
from apps.tokens.services import client_create
from apps.tokens.validation import InvalidToken, validate_access_token
from tests.tokens.conftest import INTROSPECT, form_post
from tests.tokens.test_validation import Minter

pytestmark = pytest.mark.django_db


@pytest.fixture
def minter(person) -> Minter:
    client_create(name="RP", redirect_uris=["https://rp.example/cb"], client_id="rp")
    return Minter(person)


CERT = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"  # RFC 8705 §3.1's example
KEY = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # RFC 9449 §6.1's example


def test_cnf_names_what_is_bound_and_token_type_follows_dpop() -> None:
    assert UNBOUND.cnf() == {}
    assert UNBOUND.token_type == "Bearer"
    assert Binding(x5t_s256=CERT).cnf() == {X5T_S256: CERT}
    assert Binding(x5t_s256=CERT).token_type == "Bearer"  # RFC 8705 §3: still Bearer
    assert Binding(jkt=KEY).cnf() == {JKT: KEY}
    assert Binding(jkt=KEY).token_type == "DPoP"  # RFC 9449 §5


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({}, UNBOUND),
        ({"cnf": {X5T_S256: CERT}}, Binding(x5t_s256=CERT)),
        ({"cnf": {JKT: KEY}}, Binding(jkt=KEY)),
        ({"cnf": {JKT: KEY, X5T_S256: CERT}}, Binding(x5t_s256=CERT, jkt=KEY)),
        # Malformed cnf binds to what nothing can present, never to nothing
        ({"cnf": "x"}, UNPRESENTABLE),
        ({"cnf": {}}, UNPRESENTABLE),
        ({"cnf": {JKT: 5}}, UNPRESENTABLE),
        ({"cnf": {"jwk": {"kty": "EC"}}}, UNPRESENTABLE),
        ({"cnf": [KEY]}, UNPRESENTABLE),
    ],
)
def test_binding_of_claims(claims, expected) -> None:
    assert Binding.of_claims(claims) == expected


def test_mismatch_wants_each_member_the_token_names() -> None:
    assert mismatch(UNBOUND, UNBOUND) == ""
    assert mismatch(UNBOUND, Binding(x5t_s256=CERT, jkt=KEY)) == ""  # more proof is no harm
    assert mismatch(Binding(x5t_s256=CERT), Binding(x5t_s256=CERT)) == ""
    assert "client certificate" in mismatch(Binding(x5t_s256=CERT), UNBOUND)
    assert "client certificate" in mismatch(Binding(x5t_s256=CERT), Binding(x5t_s256="other"))
    assert "Authorization: DPoP" in mismatch(Binding(jkt=KEY), UNBOUND)
    assert "another key" in mismatch(Binding(jkt=KEY), Binding(jkt="other"))
    both = Binding(x5t_s256=CERT, jkt=KEY)
    assert mismatch(both, Binding(jkt=KEY)) != ""
    assert mismatch(both, Binding(x5t_s256=CERT)) != ""
    assert mismatch(both, both) == ""
    assert mismatch(UNPRESENTABLE, Binding(x5t_s256=CERT, jkt=KEY)) != ""


@pytest.mark.parametrize("cnf", [{X5T_S256: CERT}, {JKT: KEY}, "garbage", {}])
def test_a_bound_token_is_refused_where_the_request_proves_nothing(minter: Minter, cnf) -> None:
    token = minter.token(minter.claims(cnf=cnf))
    with pytest.raises(InvalidToken):
        validate_access_token(token)  # the default: the request proves nothing
    with pytest.raises(InvalidToken):
        validate_access_token(token, presented=Binding(x5t_s256="other", jkt="other"))


def test_a_bound_token_is_accepted_with_its_proof(minter: Minter) -> None:
    token = minter.token(minter.claims(cnf={X5T_S256: CERT, JKT: KEY}))
    claims = validate_access_token(token, presented=Binding(x5t_s256=CERT, jkt=KEY))
    assert claims["cnf"] == {X5T_S256: CERT, JKT: KEY}
    # The issuer's bookkeeping (introspection, revocation) checks no binding
    assert validate_access_token(token, presented=None)["jti"] == claims["jti"]


def test_an_unbound_token_needs_no_proof(minter: Minter) -> None:
    token = minter.token()
    assert "cnf" not in validate_access_token(token)
    assert "cnf" not in validate_access_token(token, presented=Binding(jkt=KEY))


def test_userinfo_refuses_a_bound_token_presented_as_plain_bearer(
    client: HttpClient, minter: Minter
) -> None:
    token = minter.token(minter.claims(cnf={X5T_S256: CERT}))
    response = client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "client certificate" in response.json()["error_description"]


@pytest.mark.parametrize(
    ("cnf", "token_type"), [({X5T_S256: CERT}, "Bearer"), ({JKT: KEY}, "DPoP")]
)
def test_introspection_reports_cnf_and_the_token_type(
    client: HttpClient, minter: Minter, register, cnf, token_type
) -> None:
    """RFC 8705 §3.2 / RFC 9449 §6.2: the resource server that asks learns the binding, to
    check it itself; introspection does not refuse the token for lacking a proof."""
    caller = register(client_id="resource-server")
    token = minter.token(minter.claims(cnf=cnf))
    response = form_post(client, INTROSPECT, {"token": token}, auth=caller)
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True
    assert body["cnf"] == cnf
    assert body["token_type"] == token_type
