"""The admin scope goes to first-party clients only: a third-party relying party a staff
member signs in to cannot ask for admin powers (OWASP ASVS 1.4.3; RFC 6749 §3.3)."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from apps.tokens.models import Client
from apps.tokens.services import consent_grant
from apps.tokens.validation import validate_access_token
from tests.tokens.conftest import TOKEN, Flow, client_redirect, form_post, new_pkce

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(person):
    person.is_staff, person.staff_role = True, "administrator"
    person.save(update_fields=["is_staff", "staff_role"])
    return person


def test_a_third_party_client_asking_for_admin_gets_it_dropped(signed_in, register, staff) -> None:
    # RFC 6749 §3.3: a scope the client may not have is left out of the grant, and the
    # token response's `scope` says so
    rp = register()
    consent_grant(
        user_id=staff.pk, client=Client.objects.get(client_id=rp.client_id), scopes=["openid"]
    )
    tokens = Flow(signed_in, rp).tokens(scope="openid admin")
    assert tokens["scope"] == "openid"
    assert validate_access_token(tokens["access_token"])["scope"] == "openid"


def test_a_third_party_client_asking_only_for_admin_is_refused(signed_in, register, staff) -> None:
    # RFC 6749 §4.1.2.1 invalid_scope, as a redirect to the client, saying why
    flow = Flow(signed_in, register())
    answer = client_redirect(flow.authorize(new_pkce(), scope="admin"))
    assert answer["error"] == "invalid_scope"
    assert answer["error_description"] == "The scope admin is not available to this client."


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
