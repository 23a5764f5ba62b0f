"""Withdrawing consent (GDPR Art. 7(3)): the client must ask again, every token it holds for
the person stops working, and one consent.revoked event says who withdrew it."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client as HttpClient
from django.urls import reverse

from apps.tokens.models import Client, Consent, RefreshToken
from apps.tokens.services import consent_revoke
from tests.events import recorded
from tests.tokens.conftest import Flow, new_pkce, userinfo

pytestmark = pytest.mark.django_db


def test_operator_revokes_a_consent_and_its_tokens_in_the_admin(
    admin_client: HttpClient, admin_user, flow: Flow, person, rp
) -> None:
    tokens = flow.tokens()
    pkce = new_pkce()
    code = flow.code(pkce)  # issued, not yet exchanged
    consent = Consent.objects.get(user=person)
    changelist = reverse("admin:tokens_consent_changelist")
    assert b"Revoke selected consents" in admin_client.get(changelist).content

    with recorded() as events:
        response = admin_client.post(
            changelist, {"action": "revoke", "_selected_action": [consent.pk]}
        )

    assert response.status_code == 302
    assert not Consent.objects.exists()
    [event] = events
    assert (event.event_type, event.action, event.success) == ("consent.revoked", "revoked", True)
    assert (event.user_id, event.actor_id) == (str(person.pk), str(admin_user.pk))
    assert (event.resource_type, event.resource_id) == ("client", rp.client_id)
    assert event.metadata == {"scopes": "email openid profile"}
    assert (event.severity, event.compliance_tags) == ("low", ["SOC2", "GDPR"])
    assert userinfo(flow.http, tokens["access_token"]).status_code == 401
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()
    assert flow.exchange(code, pkce.verifier).json()["error"] == "invalid_grant"


def test_consent_can_be_revoked_only_with_the_action(
    admin_client: HttpClient, flow: Flow, person
) -> None:
    consent = Consent.objects.get(user=person)
    change = reverse("admin:tokens_consent_change", args=[consent.pk])
    delete = reverse("admin:tokens_consent_delete", args=[consent.pk])

    assert admin_client.get(reverse("admin:tokens_consent_changelist")).status_code == 200
    assert admin_client.post(change, {"scopes": "openid admin"}).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Consent.objects.get(pk=consent.pk).scopes == "email openid profile"


def test_revoking_a_consent_that_is_gone_records_nothing(rp, person) -> None:
    client = Client.objects.get(client_id=rp.client_id)

    with recorded() as events:
        assert consent_revoke(user_id=person.pk, client=client) is False

    assert events == []


def test_a_revocation_that_rolls_back_keeps_the_consent_and_leaves_no_event(
    flow: Flow, person, rp
) -> None:
    class Failed(Exception):
        pass

    client = Client.objects.get(client_id=rp.client_id)

    @transaction.atomic
    def revoke_then_fail() -> None:
        assert consent_revoke(user_id=person.pk, client=client) is True
        raise Failed

    with recorded() as events, pytest.raises(Failed):
        revoke_then_fail()

    assert events == []
    assert Consent.objects.filter(user=person, client=client).exists()
