"""A person's factors as the console and the security page see them, their removal after a
fresh authentication, and an operator's reset."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest

from apps.core.models import SecurityEvent
from apps.mfa.errors import FactorNotFound, ReauthenticationRequired
from apps.mfa.models import FactorKind, RecoveryCode, TotpDevice, WebAuthnCredential
from apps.mfa.passkeys import webauthn_registration_begin, webauthn_registration_finish
from apps.mfa.recovery import recovery_code_use, recovery_codes_generate
from apps.mfa.selectors import factors_of, has_second_factor
from apps.mfa.services import REAUTHENTICATION_MAX_AGE, factor_remove, mfa_reset
from apps.mfa.totp import totp_confirm, totp_enrol
from tests.accounts.factories import UserFactory
from tests.mfa.authenticator import SoftAuthenticator

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _with_every_factor(settings: Any) -> Any:
    settings.ISSUER = "https://id.example.com"
    user = UserFactory()
    enrolment = totp_enrol(user=user, name="Phone", now=NOW)
    totp_confirm(device=enrolment.device, code=pyotp.TOTP(enrolment.secret).at(NOW), now=NOW)
    totp_enrol(user=user, name="never confirmed", now=NOW)  # pending: no factor
    ceremony = webauthn_registration_begin(user=user)
    authenticator = SoftAuthenticator(
        origin="https://id.example.com", rp_id="id.example.com", backup_eligible=True
    )
    webauthn_registration_finish(
        user=user,
        ceremony_id=ceremony.id,
        response=json.dumps(authenticator.create(ceremony.options_json)),
        name="Passkey",
        now=NOW,
    )
    codes = recovery_codes_generate(user=user, now=NOW)
    recovery_code_use(user=user, code=codes[0], now=NOW)
    return user


def test_factors_of_lists_names_kinds_and_times_never_secrets(
    settings: Any, django_assert_num_queries: Any
) -> None:
    user = _with_every_factor(settings)
    with django_assert_num_queries(3):
        factors = factors_of(user)
    assert [(f.kind, f.name) for f in factors] == [
        (FactorKind.TOTP, "Phone"),
        (FactorKind.WEBAUTHN, "Passkey"),
        (FactorKind.RECOVERY_CODES, "Recovery codes"),
    ]
    assert factors[0].last_used_at == NOW
    assert factors[1].passkey
    assert not factors[1].cloned
    assert factors[2].remaining == 9
    assert factors[2].last_used_at == NOW
    assert set(vars(factors[0])) == {
        "kind", "id", "name", "created_at", "last_used_at", "passkey", "cloned", "remaining"
    }  # fmt: skip
    assert has_second_factor(user)
    assert not has_second_factor(UserFactory())


def test_removal_needs_a_fresh_authentication(settings: Any) -> None:
    user = _with_every_factor(settings)
    device = TotpDevice.objects.get(user=user, confirmed_at__isnull=False)
    for stale in (
        None,
        NOW - REAUTHENTICATION_MAX_AGE - timedelta(seconds=1),
        NOW + timedelta(hours=1),
    ):
        with pytest.raises(ReauthenticationRequired):
            factor_remove(
                user=user, kind="totp", factor_id=device.pk, reauthenticated_at=stale, now=NOW
            )
    assert TotpDevice.objects.filter(pk=device.pk).exists()

    factor_remove(
        user=user,
        kind="totp",
        factor_id=device.pk,
        reauthenticated_at=NOW - timedelta(minutes=1),
        now=NOW,
    )
    assert not TotpDevice.objects.filter(pk=device.pk).exists()
    [removed] = SecurityEvent.objects.filter(event_type="mfa.removed")
    assert (removed.resource_type, removed.resource_id) == ("totp", str(device.pk))
    assert removed.metadata == {"name": "Phone"}


def test_each_kind_can_be_removed_and_only_ones_own(settings: Any) -> None:
    user = _with_every_factor(settings)
    stranger = UserFactory()
    fresh = NOW - timedelta(seconds=10)
    for factor in factors_of(user):
        with pytest.raises(FactorNotFound):
            factor_remove(
                user=stranger,
                kind=factor.kind,
                factor_id=factor.id,
                reauthenticated_at=fresh,
                now=NOW,
            )
        factor_remove(
            user=user, kind=factor.kind, factor_id=factor.id, reauthenticated_at=fresh, now=NOW
        )
    assert factors_of(user) == []
    assert RecoveryCode.objects.count() == 0
    for kind, factor_id in [("totp", "not a uuid"), ("nonsense", uuid.uuid4())]:
        with pytest.raises(FactorNotFound):
            factor_remove(
                user=user, kind=kind, factor_id=factor_id, reauthenticated_at=fresh, now=NOW
            )


def test_operator_reset_removes_everything_with_an_event(settings: Any) -> None:
    user = _with_every_factor(settings)
    operator = UserFactory()
    removed = mfa_reset(user=user, actor_id=operator.pk)
    assert removed == {"totp": 2, "webauthn": 1, "recovery_codes": 1}
    assert not TotpDevice.objects.filter(user=user).exists()
    assert not WebAuthnCredential.objects.filter(user=user).exists()
    assert factors_of(user) == []
    [reset] = SecurityEvent.objects.filter(event_type="mfa.reset")
    assert (reset.user_id, reset.actor_id) == (str(user.pk), str(operator.pk))
    assert reset.metadata == {"removed": removed}
    assert reset.severity == "high"
