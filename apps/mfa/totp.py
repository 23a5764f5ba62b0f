"""TOTP (RFC 6238) with pyotp: enrolment, confirmation by a first code, verification.

Six digits, 30-second steps, HMAC-SHA1: what every authenticator app reads from the
provisioning URI (Google Authenticator key-URI format; RFC 6238 §4 and §5.2 defaults). A code
of the current step or one step either side is accepted (RFC 6238 §5.2: "at most one time step
is allowed as the network delay"), and each step once: the device keeps the last accepted
step and refuses that step and older ones (RFC 6238 §5.2, replay), under a row lock so two
concurrent uses of one code cannot both pass. Codes are compared in constant time.

`now` is the clock of every service here (tests pass it; callers leave it None).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

import pyotp
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core import sealing
from apps.core.events import EventType, emit
from apps.mfa.errors import FactorNotFound, MalformedInput, ReplayedCode, VerificationFailed
from apps.mfa.models import TotpDevice

DIGITS = 6
VALID_WINDOW = 1  # steps accepted either side of the current one (RFC 6238 §5.2)
# 32 base32 characters = 160 bits, the secret length RFC 4226 §4 R6 recommends.
SECRET_LENGTH = 32
NAME_MAX = TotpDevice._meta.get_field("name").max_length or 64


@dataclass(frozen=True)
class TotpEnrolment:
    """Shown once to the person: the secret as text and as the URI a QR code carries."""

    device: TotpDevice
    secret: str
    provisioning_uri: str


def totp_enrol(*, user: User, name: str, now: datetime | None = None) -> TotpEnrolment:
    """A new, unconfirmed device: it becomes a factor once totp_confirm() saw a first code.
    An earlier device the person never confirmed is dropped (one pending enrolment)."""
    now = now or timezone.now()
    name = _name(name)
    secret = pyotp.random_base32(length=SECRET_LENGTH)
    device = TotpDevice(user=user, name=name, created_at=now)
    device.sealed_secret, device.kek_id = sealing.seal(secret.encode(), aad=_aad(device))
    with transaction.atomic():
        TotpDevice.objects.filter(user=user, confirmed_at__isnull=True).delete()
        device.save(force_insert=True)
    uri = totp_provisioning_uri(user=user, secret=secret)
    return TotpEnrolment(device=device, secret=secret, provisioning_uri=uri)


def totp_provisioning_uri(*, user: User, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS).provisioning_uri(
        name=user.email, issuer_name=settings.SITE_NAME
    )


def totp_confirm(*, device: TotpDevice, code: str, now: datetime | None = None) -> TotpDevice:
    """The first code proves the app holds the secret; the device is a factor from now on."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            TotpDevice.objects.select_for_update()
            .filter(pk=device.pk, confirmed_at__isnull=True)
            .first()
        )
        if locked is None:
            raise FactorNotFound("no such unconfirmed TOTP device")
        _check(locked, code, now)
        locked.confirmed_at = now
        locked.save(update_fields=["confirmed_at", "last_used_step", "last_used_at"])
        emit(
            EventType.MFA_ENROLLED,
            user_id=locked.user_id,
            resource_type="totp",
            resource_id=locked.pk,
            metadata={"name": locked.name},
        )
    return locked


def totp_verify(*, user: User, code: str, now: datetime | None = None) -> TotpDevice:
    """The person's confirmed device that accepts `code`; records mfa.succeeded or mfa.failed
    (in the caller's transaction when there is one) and raises a VerificationFailed."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            devices = list(
                TotpDevice.objects.select_for_update()
                .filter(user=user, confirmed_at__isnull=False)
                .order_by("created_at", "id")
            )
            if not devices:
                raise FactorNotFound("no TOTP device")
            failure: VerificationFailed | MalformedInput | None = None
            for device in devices:
                try:
                    _check(device, code, now)
                except ReplayedCode as error:
                    failure = error  # the most telling reason wins
                except VerificationFailed as error:
                    failure = failure or error
                else:
                    device.save(update_fields=["last_used_step", "last_used_at"])
                    emit(
                        EventType.MFA_SUCCEEDED,
                        user_id=user.pk,
                        resource_type="totp",
                        resource_id=device.pk,
                    )
                    return device
            assert failure is not None
            raise failure
    except (VerificationFailed, MalformedInput, FactorNotFound) as error:
        emit(
            EventType.MFA_FAILED,
            user_id=user.pk,
            resource_type="totp",
            success=False,
            error_code=error.error_code,
        )
        raise


def totp_secret(device: TotpDevice) -> str:
    """The device's secret, opened from its seal (for the enrolment page and tests only)."""
    return sealing.unseal(
        bytes(device.sealed_secret), sealed_by=device.kek_id, aad=_aad(device)
    ).decode()


class SealedTotpSecrets:
    """TOTP secrets for `manage.py reseal` (apps.core.reseal, settings.SEALED_ROWS): the
    secret is sealed again under the current key-encryption key, the same for the person's
    app (its codes do not change)."""

    model = TotpDevice

    def reseal(self, row: TotpDevice) -> None:
        secret = sealing.unseal(bytes(row.sealed_secret), sealed_by=row.kek_id, aad=_aad(row))
        row.sealed_secret, row.kek_id = sealing.seal(secret, aad=_aad(row))
        row.save(update_fields=["sealed_secret", "kek_id"])

    def batch_resealed(self) -> None:
        pass  # every read of a device reads its row: nothing is cached


def _check(device: TotpDevice, code: str, now: datetime) -> None:
    """Accept `code` on a locked device: records its step on the row (the caller saves)."""
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        raise MalformedInput(f"a TOTP code is {DIGITS} digits")
    totp = pyotp.TOTP(totp_secret(device), digits=DIGITS)
    current = totp.timecode(now)
    matched: int | None = None
    # Every step of the window is computed and compared (no early exit: constant time).
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), code.encode()):
            matched = step
    if matched is None:
        raise VerificationFailed("the code is not valid now")
    if device.last_used_step is not None and matched <= device.last_used_step:
        raise ReplayedCode("this code (or a later one) was used already")
    device.last_used_step = matched
    device.last_used_at = now


def _aad(device: TotpDevice) -> bytes:
    """Binds a sealed secret to its row: copied to another device, it won't open."""
    return f"tessera totp secret\x00{device.pk}\x00{device.user_id}".encode()


def _name(name: str) -> str:
    name = " ".join(name.split())[:NAME_MAX]
    return name or "Authenticator app"
