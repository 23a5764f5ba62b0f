"""TOTP (RFC 6238): codes computed here from the enrolled secret with pyotp at a given time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from apps.core import sealing
from apps.core.models import SecurityEvent
from apps.mfa.errors import FactorNotFound, MalformedInput, ReplayedCode, VerificationFailed
from apps.mfa.models import TotpDevice
from apps.mfa.totp import totp_confirm, totp_enrol, totp_secret, totp_verify
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)  # a step boundary: 30 s divides it


def _events(kind: str) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type=kind).order_by("occurred_at"))


def _confirmed(now: datetime = T0) -> tuple[TotpDevice, pyotp.TOTP]:
    user = UserFactory()
    enrolment = totp_enrol(user=user, name="Phone", now=now - timedelta(minutes=5))
    totp = pyotp.TOTP(enrolment.secret)
    confirmed_at = now - timedelta(minutes=5)
    device = totp_confirm(device=enrolment.device, code=totp.at(confirmed_at), now=confirmed_at)
    return device, totp


def test_enrolment_gives_a_provisioning_uri_and_seals_the_secret(settings) -> None:
    settings.SITE_NAME = "Tessera Test"
    user = UserFactory(email="ada@example.com")
    enrolment = totp_enrol(user=user, name="  My   phone ", now=T0)

    uri = urlsplit(enrolment.provisioning_uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    query = parse_qs(uri.query)
    assert query["secret"] == [enrolment.secret]
    assert query["issuer"] == ["Tessera Test"]
    assert "ada%40example.com" in uri.path or "ada@example.com" in uri.path
    assert len(enrolment.secret) == 32  # 160 bits (RFC 4226 §4 R6)

    stored = TotpDevice.objects.get()
    assert stored.name == "My phone"
    assert stored.confirmed_at is None
    assert enrolment.secret.encode() not in bytes(stored.sealed_secret)
    assert stored.kek_id == sealing.current_kek_id()
    assert totp_secret(stored) == enrolment.secret


def test_sealed_secret_copied_to_another_device_does_not_open() -> None:
    first = totp_enrol(user=UserFactory(), name="a", now=T0).device
    second = totp_enrol(user=UserFactory(), name="b", now=T0).device
    second.sealed_secret = bytes(first.sealed_secret)
    with pytest.raises(sealing.SealAltered):
        totp_secret(second)


def test_unconfirmed_device_is_no_factor_until_a_first_code() -> None:
    user = UserFactory()
    enrolment = totp_enrol(user=user, name="Phone", now=T0)
    totp = pyotp.TOTP(enrolment.secret)
    with pytest.raises(FactorNotFound):
        totp_verify(user=user, code=totp.at(T0), now=T0)

    with pytest.raises(VerificationFailed):
        totp_confirm(device=enrolment.device, code=totp.at(T0 - timedelta(minutes=2)), now=T0)
    device = totp_confirm(device=enrolment.device, code=totp.at(T0), now=T0)
    assert device.confirmed_at == T0
    [enrolled] = _events("mfa.enrolled")
    assert (enrolled.resource_type, enrolled.user_id) == ("totp", str(user.pk))
    assert enrolled.metadata == {"name": "Phone"}


def test_a_second_enrolment_drops_the_unconfirmed_one() -> None:
    user = UserFactory()
    totp_enrol(user=user, name="first", now=T0)
    totp_enrol(user=user, name="second", now=T0)
    assert list(TotpDevice.objects.values_list("name", flat=True)) == ["second"]


def test_code_is_accepted_once_and_its_replay_refused() -> None:
    device, totp = _confirmed()
    now = T0 + timedelta(minutes=1)
    assert totp_verify(user=device.user, code=totp.at(now), now=now) == device
    stored = TotpDevice.objects.get()
    assert stored.last_used_at == now
    assert stored.last_used_step == totp.timecode(now)

    # RFC 6238 §5.2: the same code again, within its step, is refused.
    with pytest.raises(ReplayedCode):
        totp_verify(user=device.user, code=totp.at(now), now=now + timedelta(seconds=10))
    [failed] = _events("mfa.failed")
    assert (failed.error_code, failed.success) == ("replayed_code", False)
    assert len(_events("mfa.succeeded")) == 1


def test_older_step_is_refused_after_a_newer_one_was_used() -> None:
    device, totp = _confirmed()
    now = T0 + timedelta(minutes=1)
    totp_verify(user=device.user, code=totp.at(now), now=now)
    # The previous step's code is inside the ±1 window but older than the step used.
    with pytest.raises(ReplayedCode):
        totp_verify(user=device.user, code=totp.at(now - timedelta(seconds=30)), now=now)


@pytest.mark.parametrize(
    ("code_at", "accepted"),
    [
        (-31, False),  # two steps back: outside the window
        (-30, True),  # the previous step (network delay, RFC 6238 §5.2)
        (-1, True),
        (0, True),
        (29, True),  # still the current step
        (30, True),  # the next step (a fast clock)
        (59, True),
        (60, False),  # two steps ahead
    ],
)
def test_window_is_one_step_either_side(code_at: int, accepted: bool) -> None:
    device, totp = _confirmed()
    now = T0 + timedelta(minutes=1)  # a step boundary, after the confirmation's step
    code = totp.at(now + timedelta(seconds=code_at))
    if accepted:
        assert totp_verify(user=device.user, code=code, now=now) == device
    else:
        with pytest.raises(VerificationFailed) as raised:
            totp_verify(user=device.user, code=code, now=now)
        assert type(raised.value) is VerificationFailed


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "12 34\t56x"])
def test_malformed_code_is_a_clear_error(code: str) -> None:
    device, _ = _confirmed()
    with pytest.raises(MalformedInput):
        totp_verify(user=device.user, code=code, now=T0 + timedelta(minutes=1))
    assert [event.error_code for event in _events("mfa.failed")] == ["malformed_input"]


def test_code_typed_with_spaces_is_accepted() -> None:
    device, totp = _confirmed()
    now = T0 + timedelta(minutes=1)
    code = totp.at(now)
    assert totp_verify(user=device.user, code=f" {code[:3]} {code[3:]} ", now=now) == device


def test_any_of_several_devices_may_answer() -> None:
    device, _ = _confirmed()
    second = totp_enrol(user=device.user, name="Tablet", now=T0)
    totp2 = pyotp.TOTP(second.secret)
    totp_confirm(device=second.device, code=totp2.at(T0), now=T0)
    now = T0 + timedelta(minutes=2)
    assert totp_verify(user=device.user, code=totp2.at(now), now=now) == second.device
