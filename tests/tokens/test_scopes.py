"""The admin scope goes to first-party clients only: a third-party relying party a staff
member signs in to cannot ask for admin powers (OWASP ASVS 1.4.3; RFC 6749 §3.3)."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from apps.tokens.validation import validate_access_token
from tests.tokens.conftest import TOKEN, Flow, client_redirect, form_post, new_pkce

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(person):
    person.is_staff = True
    person.save(update_fields=["is_staff"])
    return person


def test_a_third_party_client_cannot_ask_for_the_admin_scope(signed_in, register, staff) -> None:
    # RFC 6749 §4.1.2.1 invalid_scope, as a redirect to the client
    flow = Flow(signed_in, register())
    answer = client_redirect(flow.authorize(new_pkce(), scope="openid admin"))
    assert answer["error"] == "invalid_scope"


def test_a_first_party_client_gets_the_admin_scope_for_staff(signed_in, register, staff) -> None:
    flow = Flow(signed_in, register(skip_consent=True))
    pkce = new_pkce()
    code = flow.code(pkce, scope="openid admin")
    tokens = flow.exchange(code, pkce.verifier).json()
    assert "admin" in validate_access_token(tokens["access_token"])["scope"].split()


@pytest.mark.parametrize(("first_party", "status"), [(False, 400), (True, 200)])
def test_client_credentials_admin_scope_only_for_first_party_clients(
    client: HttpClient, register, first_party: bool, status: int
) -> None:
    machine = register(
        grant_types=["client_credentials"], redirect_uris=[], skip_consent=first_party
    )
    data = {"grant_type": "client_credentials", "scope": "admin"}
    response = form_post(client, TOKEN, data, auth=machine)
    assert response.status_code == status
    if status == 400:
        assert response.json()["error"] == "invalid_scope"
