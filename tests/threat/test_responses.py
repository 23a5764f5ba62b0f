"""apps/threat/responses.py: what each action of a risk decision does to a person, with the
real services underneath (sessions, revocation list in Redis, tokens through the core port,
the back-channel logout worker, the suite's Celery broker), and lifting expired blocks."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from celery import current_app
from django.conf import settings
from django.test import Client as HttpClient
from django.test import override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from apps.accounts.models import User
from apps.accounts.services import user_block
from apps.accounts.tasks import lift_expired_blocks
from apps.core import revocation
from apps.core.risk import Action, LoginContext, RiskDecision, RiskReason, SessionActivity
from apps.sessions.models import LoginSession
from apps.threat.responses import respond
from apps.tokens.models import BackchannelLogoutDelivery, OfflineGrant
from tests.events import recorded
from tests.servers import production_web_server, wait_for
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import Flow, register, signed_in  # noqa: F401 - fixtures
from tests.tokens.test_backchannel_logout import (  # noqa: F401 - fixtures
    finished_deliveries,
    receiver,
    verified_logout_token,
    worker_keys,
)
from tests.tokens.test_offline_access import assert_dead, offline_flow, offline_tokens  # noqa: F401

# Issue 16: "tokens refused everywhere within 1 s".
REFUSED_WITHIN = 1.0
WAIT = 30.0


def decision(action: str, *rules: str, actions: tuple[str, ...] = (), **extra: Any) -> RiskDecision:
    return RiskDecision(
        score=88,
        action=action,
        reasons=(RiskReason("new_country", 40, "FR → JP"), RiskReason("new_device", 30)),
        rules=rules or (f"rule-{action}",),
        actions=actions or (action,),
        extra={"ip": "203.0.113.7", "country": "JP", "severity": "high", **extra},
    )


def attempt(person: User | None, ip: str = "203.0.113.7") -> LoginContext:
    return LoginContext(
        at=timezone.now(),
        email=person.email if person else "nobody@example.com",
        ip=ip,
        user_agent="Mozilla/5.0",
        success=True,
        user_id=person.pk if person else None,
        country="JP",
    )


def live_sessions(person: User) -> list[LoginSession]:
    return list(LoginSession.objects.filter(user=person, ended_at__isnull=True))


def of_type(events: list[Any], event_type: str) -> list[Any]:
    return [e for e in events if e.event_type == event_type]


# --- each action ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_alert_records_the_event_and_leaves_the_person_alone(person) -> None:
    session = force_sign_in(HttpClient(), person)
    with recorded() as events:
        respond(decision(Action.ALERT, "new-country"), user_id=person.pk, context=attempt(person))
    [alerted] = of_type(events, "threat.alerted")
    assert alerted.user_id == str(person.pk)
    assert alerted.metadata["rule"] == "new-country"
    assert alerted.metadata["score"] == 88
    assert alerted.metadata["actions"] == ["alert"]
    assert alerted.metadata["reasons"][0] == {
        "signal": "new_country",
        "points": 40,
        "detail": "FR → JP",
    }
    assert alerted.metadata["channels"] == []  # none configured in the suite
    person.refresh_from_db()
    assert not person.is_blocked()
    assert not person.mfa_required
    assert [s.pk for s in live_sessions(person)] == [session.pk]


@pytest.mark.django_db
def test_allow_does_nothing(person) -> None:
    with recorded() as events:
        respond(RiskDecision(score=3, action=Action.ALLOW), user_id=person.pk)
    assert events == []


@pytest.mark.django_db
def test_an_unknown_address_can_only_be_alerted_about() -> None:
    """No person to block: a block rule matching an unknown address alerts, keyed by IP."""
    with recorded() as events:
        respond(decision(Action.BLOCK, "stuffing"), user_id=None, context=attempt(None))
    [alerted] = [e.metadata for e in of_type(events, "threat.alerted")]
    assert alerted["actions"] == ["alert"]
    assert alerted["ip"] == "203.0.113.7"
    assert not of_type(events, "user.blocked")


@pytest.mark.django_db
def test_block_for_the_rules_minutes_ends_sessions_and_alerts(person) -> None:
    force_sign_in(HttpClient(), person)
    force_sign_in(HttpClient(), person)
    before = timezone.now()
    with recorded() as events:
        respond(
            decision(Action.BLOCK, "impossible-travel", block_minutes=30),
            user_id=person.pk,
            context=attempt(person),
        )
    person.refresh_from_db()
    assert person.is_blocked()
    assert person.blocked_by == "threat"
    assert "impossible-travel" in person.blocked_reason
    assert person.blocked_until is not None
    assert (
        before + dt.timedelta(minutes=30)
        <= person.blocked_until
        <= timezone.now() + dt.timedelta(minutes=30)
    )
    assert live_sessions(person) == []
    assert {s.end_reason for s in LoginSession.objects.filter(user=person)} == {"threat"}
    [blocked] = of_type(events, "user.blocked")
    assert blocked.metadata["rule"] == "impossible-travel"
    assert len(of_type(events, "session.revoked")) == 2
    [alerted] = of_type(events, "threat.alerted")
    assert alerted.metadata["actions"] == ["block", "invalidate_sessions"]


@pytest.mark.django_db
def test_block_without_minutes_lasts_until_unblocked(person) -> None:
    respond(decision(Action.BLOCK), user_id=person.pk, context=attempt(person))
    person.refresh_from_db()
    assert person.is_blocked(timezone.now() + dt.timedelta(days=3650))
    assert person.blocked_until is None


@pytest.mark.django_db
def test_block_with_one_rule_without_minutes_is_until_unblocked(person) -> None:
    respond(
        decision(Action.BLOCK, "a", "b", block_minutes=[10, None]),
        user_id=person.pk,
        context=attempt(person),
    )
    person.refresh_from_db()
    assert person.blocked_until is None
    assert person.is_blocked()


@pytest.mark.django_db
def test_invalidate_ends_sessions_and_offline_grants_but_does_not_block(
    person,
    offline_flow: Flow,  # noqa: F811 - the fixture
) -> None:
    tokens = offline_tokens(offline_flow)
    grant = OfflineGrant.objects.get(user=person)
    with recorded() as events:
        respond(decision(Action.INVALIDATE_SESSIONS), user_id=person.pk, context=attempt(person))
    assert live_sessions(person) == []
    grant.refresh_from_db()
    assert grant.revoked_at is not None
    assert grant.revoke_reason == "threat"
    assert_dead(offline_flow, tokens)
    person.refresh_from_db()
    assert not person.is_blocked()
    assert of_type(events, "offline_access.revoked")
    [alerted] = of_type(events, "threat.alerted")
    assert alerted.metadata["actions"] == ["invalidate_sessions"]


@pytest.mark.django_db
def test_require_mfa_from_session_activity_requires_it_and_ends_that_session(person) -> None:
    suspicious = force_sign_in(HttpClient(), person)
    other = force_sign_in(HttpClient(), person)
    activity = SessionActivity(
        at=timezone.now(),
        kind="refresh",
        user_id=person.pk,
        session_id=suspicious.pk,
        ip="198.51.100.9",
        user_agent="curl/8",
        client_id="rp",
    )
    with recorded() as events:
        respond(decision(Action.REQUIRE_MFA), user_id=person.pk, activity=activity)
    person.refresh_from_db()
    assert person.mfa_required
    assert person.mfa_required_by == "threat"
    assert [s.pk for s in live_sessions(person)] == [other.pk]
    [changed] = of_type(events, "user.changed")
    assert changed.metadata == {"mfa_required": True, "source": "threat"}
    [alerted] = of_type(events, "threat.alerted")
    assert alerted.metadata["activity"] == "refresh"
    assert alerted.session_id == str(suspicious.pk)


@pytest.mark.django_db
def test_require_mfa_at_sign_in_is_left_to_the_pipeline(person) -> None:
    """The attempt's second factor is the sign-in's step; respond only records."""
    session = force_sign_in(HttpClient(), person)
    with recorded() as events:
        respond(decision(Action.REQUIRE_MFA), user_id=person.pk, context=attempt(person))
    person.refresh_from_db()
    assert not person.mfa_required
    assert [s.pk for s in live_sessions(person)] == [session.pk]
    assert [e.event_type for e in events] == []


@pytest.mark.django_db
def test_every_matched_action_is_carried_out(person) -> None:
    force_sign_in(HttpClient(), person)
    with recorded() as events:
        respond(
            decision(Action.BLOCK, "travel", "stuffing", actions=(Action.ALERT, Action.BLOCK)),
            user_id=person.pk,
            context=attempt(person),
        )
    person.refresh_from_db()
    assert person.is_blocked()
    assert live_sessions(person) == []
    [alerted] = of_type(events, "threat.alerted")  # one alert for both rules
    assert alerted.metadata["rules"] == ["travel", "stuffing"]


# --- what "everything ends" means to relying parties -------------------------------------------


@pytest.fixture
def web_process(servers, django_db_setup) -> Iterator[str]:
    """Another process (the production web server), sharing only PostgreSQL and Redis."""
    import os

    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
        "IDP_WEB_WORKERS": "1",
        "IDP_LOG_LEVEL": "warning",
    }
    with production_web_server(env) as (_, url):
        yield url


def _userinfo(url: str, token: str) -> int:
    return requests.get(
        url + "/oauth/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=5
    ).status_code


@pytest.mark.django_db(transaction=True)
def test_tokens_are_refused_by_another_process_within_a_second(
    person, sign_in: Callable[..., Flow], web_process: str
) -> None:
    flow = sign_in()
    access = flow.tokens()["access_token"]
    assert _userinfo(web_process, access) == 200
    started = time.monotonic()
    respond(decision(Action.INVALIDATE_SESSIONS), user_id=person.pk, context=attempt(person))
    wait_for(lambda: _userinfo(web_process, access) == 401, 5, "the token is still accepted")
    elapsed = time.monotonic() - started
    print(f"token refused by another process {elapsed * 1000:.0f} ms after respond()")
    assert elapsed < REFUSED_WITHIN


@pytest.fixture
def sign_in(signed_in: HttpClient, person, register, worker_keys: None) -> Callable[..., Flow]:  # noqa: F811
    """A relying party registered with `options`, and `person`'s tokens from it."""
    from apps.tokens.models import Client
    from apps.tokens.services import consent_grant

    def _sign_in(**options: Any) -> Flow:
        rp = register(grant_types=["authorization_code", "refresh_token"], **options)
        client = Client.objects.get(client_id=rp.client_id)
        consent_grant(user_id=person.pk, client=client, scopes=["openid", "profile", "email"])
        flow = Flow(signed_in, rp)
        flow.tokens()
        return flow

    return _sign_in


@pytest.mark.django_db(transaction=True)
def test_relying_parties_get_a_back_channel_logout(person, sign_in, receiver) -> None:  # noqa: F811
    endpoint = receiver(200)
    flow = sign_in(backchannel_logout_uri=endpoint.url)
    [session] = live_sessions(person)

    respond(decision(Action.BLOCK), user_id=person.pk, context=attempt(person))

    claims = verified_logout_token(flow.http, endpoint.next_post().logout_token, flow.rp.client_id)
    assert claims["sid"] == str(session.pk)
    [delivery] = finished_deliveries(session)
    assert delivery.status == BackchannelLogoutDelivery.Status.DELIVERED


# --- outages -----------------------------------------------------------------------------------


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queueing any task fails as kombu fails when the broker cannot be reached; the rest of
    Redis (the revocation list) stays up."""

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise KombuOperationalError("Error 111 connecting to the broker. Connection refused.")

    monkeypatch.setattr(current_app, "send_task", unreachable)


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_the_person_is_still_blocked_and_signed_out(
    person, broker_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    session = force_sign_in(HttpClient(), person)
    with (
        override_settings(
            THREAT_WEBHOOK_URL="https://alerts.example.com/hook",
            THREAT_WEBHOOK_SECRET="s" * 32,
            THREAT_ALERT_EMAILS=["soc@example.com"],
        ),
        caplog.at_level(logging.WARNING),
    ):
        respond(decision(Action.BLOCK), user_id=person.pk, context=attempt(person))
    person.refresh_from_db()
    assert person.is_blocked()
    assert live_sessions(person) == []
    assert revocation.is_revoked(jti=uuid.uuid4().hex, sid=str(session.pk))
    # One WARNING line per task the broker did not take, no traceback (apps/core/commit.py).
    unqueued = [r for r in caplog.records if r.name == "tessera.tasks"]
    assert sorted(r.task for r in unqueued) == [  # type: ignore[attr-defined]
        "apps.core.tasks.mail_deliver",
        "apps.threat.tasks.webhook_deliver",
    ]
    assert {(r.levelno, r.exc_info) for r in unqueued} == {(logging.WARNING, None)}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- expired blocks ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_expired_blocks_are_lifted_and_recorded(person, django_user_model) -> None:
    from apps.accounts.services import user_create

    still = user_create(email="grace@example.com", name="Grace", password="x" * 20)
    forever = user_create(email="alan@example.com", name="Alan", password="x" * 20)
    soon = timezone.now() + dt.timedelta(minutes=5)
    user_block(user=person, actor_id=None, source="threat", reason="r", until=soon)
    user_block(user=still, actor_id=None, source="threat", reason="r", until=soon)
    user_block(user=forever, actor_id=None, source="threat", reason="r")
    User.objects.filter(pk=person.pk).update(blocked_until=timezone.now() - dt.timedelta(seconds=1))

    with recorded() as events:
        assert lift_expired_blocks() == 1
    [unblocked] = of_type(events, "user.unblocked")
    assert unblocked.user_id == str(person.pk)
    assert unblocked.actor_id == ""
    assert unblocked.metadata["reason"] == "expired"
    person.refresh_from_db()
    still.refresh_from_db()
    forever.refresh_from_db()
    assert person.blocked_at is None
    assert still.is_blocked()
    assert forever.is_blocked()
    assert lift_expired_blocks() == 0


def test_lifting_expired_blocks_is_on_the_beat_schedule() -> None:
    [entry] = [
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "apps.accounts.tasks.lift_expired_blocks"
    ]
    assert entry["schedule"] <= 60.0
    assert lift_expired_blocks.name == entry["task"]
