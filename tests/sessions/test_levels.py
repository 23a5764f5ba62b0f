"""What a login session proves: amr (RFC 8176) read as a level and an acr (OIDC Core §2),
after NIST SP 800-63B's AAL1-3; and step-up, which raises a live session's level."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.sessions.levels import (
    ACR_HARDWARE_KEY,
    ACR_MFA,
    ACR_PASSWORD,
    ACR_VALUES_SUPPORTED,
    acr_level,
    level_of,
)
from apps.sessions.models import LoginSession
from apps.sessions.services import session_auth_time, session_end, session_start, session_step_up
from tests.accounts.factories import UserFactory
from tests.events import recorded


@pytest.mark.parametrize(
    ("amr", "level", "acr"),
    [
        (["pwd"], 1, ACR_PASSWORD),
        ([], 1, ACR_PASSWORD),  # an upstream provider that said nothing: one factor at most
        (["hwk", "user"], 1, ACR_PASSWORD),  # a security key touched: presence, one factor
        (["otp", "hwk"], 1, ACR_PASSWORD),  # NIST 800-63B §4.2.1: two of a kind are one
        (["pwd", "otp"], 2, ACR_MFA),  # AAL2: password and TOTP
        (["swk", "fpt"], 2, ACR_MFA),  # a synced passkey with a biometric: AAL2
        (["swk", "mfa"], 2, ACR_MFA),  # RFC 8176 mfa: verified two factors at once
        (["pwd", "hwk"], 3, ACR_HARDWARE_KEY),  # AAL3: password and a hardware-bound key
        (["hwk", "pin"], 3, ACR_HARDWARE_KEY),  # a device-bound passkey verified by PIN
        (["pwd", "kba"], 1, ACR_PASSWORD),  # two of knowledge
        (["user", "geo", "pwd"], 1, ACR_PASSWORD),  # presence and place are no factors
    ],
)
def test_amr_reads_as_level_and_acr(amr: list[str], level: int, acr: str) -> None:
    reached = level_of(amr)
    assert (reached.security_level, reached.acr) == (level, acr)
    assert acr_level(acr) == level


def test_levels_are_published_lowest_first() -> None:
    assert [acr_level(acr) for acr in ACR_VALUES_SUPPORTED] == [1, 2, 3]
    assert acr_level("urn:example:unknown") is None


@pytest.mark.django_db
def test_session_start_sets_level_from_amr() -> None:
    session = session_start(user=UserFactory(), amr=["pwd", "otp"])
    assert isinstance(session, LoginSession)
    stored = LoginSession.objects.get(pk=session.pk)
    assert (stored.acr, stored.security_level, stored.amr) == (ACR_MFA, 2, ["pwd", "otp"])
    assert stored.authenticated_at == stored.created_at


@pytest.mark.django_db
def test_step_up_raises_level_appends_amr_and_moves_auth_time() -> None:
    session = session_start(user=UserFactory(), amr=["pwd"])
    assert isinstance(session, LoginSession)
    earlier = timezone.now() - timedelta(minutes=30)
    LoginSession.objects.filter(pk=session.pk).update(authenticated_at=earlier)
    session.authenticated_at = earlier
    with recorded() as events:
        assert session_step_up(session=session, amr=["otp", "pwd"])
    stored = LoginSession.objects.get(pk=session.pk)
    assert stored.amr == ["pwd", "otp"]
    assert (stored.acr, stored.security_level) == (ACR_MFA, 2)
    # OIDC Core §2 auth_time: the step-up is an authentication of the person, now.
    assert session_auth_time(stored) > earlier + timedelta(minutes=29)
    assert (session.acr, session.amr) == (stored.acr, stored.amr)
    [event] = events
    assert event.event_type == "session.stepped_up"
    assert event.session_id == str(session.pk)
    assert event.metadata == {
        "added": ["otp"],
        "amr": ["pwd", "otp"],
        "acr": ACR_MFA,
        "level_before": 1,
        "level_after": 2,
    }


@pytest.mark.django_db
def test_step_up_of_an_ended_session_is_refused() -> None:
    session = session_start(user=UserFactory(), amr=["pwd"])
    assert isinstance(session, LoginSession)
    session_end(session=session, reason="logout")
    with recorded() as events:
        assert not session_step_up(session=session, amr=["otp"])
    assert events == []
    assert LoginSession.objects.get(pk=session.pk).amr == ["pwd"]


@pytest.mark.django_db
def test_auth_time_of_a_session_begun_before_it_was_kept_is_its_login() -> None:
    session = session_start(user=UserFactory(), amr=["pwd"])
    assert isinstance(session, LoginSession)
    session.authenticated_at = None
    assert session_auth_time(session) == session.created_at
