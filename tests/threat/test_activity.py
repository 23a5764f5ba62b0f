"""Session activity after sign-in (apps/threat/activity.py): what a request hands over (only a
public client's activity, only from another network than the session's, once a minute), and
what the worker makes of it: the same signals, rules and responses as a sign-in (issue 16:
"a refresh from a new network, a userinfo call from a new country ... assessed
asynchronously by Celery and can trigger the same actions")."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import current_app
from django.test import Client as HttpClient
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from apps.accounts.models import User
from apps.core.risk import Action, SessionActivity
from apps.sessions import geo
from apps.sessions.models import LoginSession
from apps.threat import activity as activity_module
from apps.threat.activity import activity_assess, activity_observe, activity_payload
from apps.threat.ruleset import ruleset_cache_clear
from apps.threat.services import rule_create
from apps.tokens.services import client_create, consent_grant
from tests.events import recorded
from tests.rp import REDIRECT_URI, RegisteredClient
from tests.servers import wait_for
from tests.sessions.test_session_validation import browser, sign_in
from tests.tokens.conftest import SCOPE, TOKEN, Flow, form_post, new_pkce, userinfo

PARIS = "203.0.113.20"
TOKYO = "198.51.100.7"
WAIT = 30.0


@pytest.fixture
def world(tmp_path: Path, settings) -> Iterator[None]:
    """A GeoIP city database with Paris and Tokyo (mmdb-writer, MaxMind's format)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    for network, country, city, lat, lon in (
        ("203.0.113.0/24", "FR", "Paris", 48.8566, 2.3522),
        ("198.51.100.0/24", "JP", "Tokyo", 35.6762, 139.6503),
    ):
        writer.insert_network(
            IPSet([network]),
            {
                "country": {"iso_code": country},
                "city": {"names": {"en": city}},
                "location": {"latitude": lat, "longitude": lon},
            },
        )
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    settings.GEOIP_DATABASE = path
    geo.geo_cache_clear()
    yield
    geo.geo_cache_clear()


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    activity_module.memo_clear()
    yield
    activity_module.memo_clear()


def registered(person: User, *, public: bool) -> RegisteredClient:
    """A relying party `person` already let in."""
    client, secret = client_create(name="App", redirect_uris=[REDIRECT_URI], public=public)
    consent_grant(user_id=person.pk, client=client, scopes=SCOPE.split())
    return RegisteredClient(client.client_id, secret)


def seen(ip: str | None, *, session_ip: str | None = PARIS, session_id: uuid.UUID | None = None):
    return SessionActivity(
        at=timezone.now(),
        kind="refresh",
        user_id=uuid.uuid4(),
        session_id=session_id or uuid.uuid4(),
        ip=ip,
        user_agent="Tessera-App/2.1 (iOS 18)",
        client_id="app",
        public_client=True,
        session_ip=session_ip,
    )


@pytest.fixture
def queued(monkeypatch) -> list[dict]:
    """What activity_observe sends to the broker (the task's name and arguments)."""
    sent: list[dict] = []

    def send_task(name: str, args: list, **options: object) -> None:
        assert name == "apps.threat.tasks.assess_activity"
        assert options == {"ignore_result": True, "retry": False}
        sent.append(args[0])

    monkeypatch.setattr(current_app, "send_task", send_task)
    return sent


# --- what a request hands over -------------------------------------------------------------


def test_activity_from_the_sessions_own_network_costs_nothing(queued) -> None:
    assert activity_observe(seen("203.0.113.99")) is False  # same /24 as the login
    assert activity_observe(seen(None)) is False  # no address: nothing to judge
    assert queued == []


def test_another_network_is_handed_over_once_a_minute_per_session(world, queued) -> None:
    session_id = uuid.uuid4()
    assert activity_observe(seen(TOKYO, session_id=session_id)) is True
    assert activity_observe(seen("198.51.100.8", session_id=session_id)) is False  # same network
    assert activity_observe(seen(TOKYO, session_id=uuid.uuid4())) is True  # another session
    [first, _] = queued
    assert first["geo"]["country"] == "JP"  # located where the request was seen
    assert first["geo"]["lat"] == pytest.approx(35.6762)
    assert first["ip"] == TOKYO
    assert first["kind"] == "refresh"


def test_a_broker_outage_leaves_the_request_alone(monkeypatch, caplog) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise KombuOperationalError("Error 111 connecting to the broker")

    monkeypatch.setattr(current_app, "send_task", down)
    assert activity_observe(seen(TOKYO)) is False
    assert "session activity not queued" in caplog.text
    # Not remembered as handed over: the next request tries again.
    monkeypatch.undo()


def test_a_confidential_clients_calls_are_not_the_persons(world, person, queued) -> None:
    # Its token requests come from the relying party's servers, not the person's device.
    http = browser(ip=PARIS)
    sign_in(http, person)
    rp = registered(person, public=False)
    tokens = Flow(http, rp).tokens()
    server = HttpClient(REMOTE_ADDR=TOKYO)
    assert Flow(server, rp).refresh(tokens["refresh_token"]).status_code == 200
    assert userinfo(server, tokens["access_token"]).status_code == 200
    assert queued == []


# --- what the worker makes of it -----------------------------------------------------------


def far_away_rule() -> None:
    rule_create(
        actor_id=None,
        name="stolen-token-far-away",
        condition="activity and public_client and impossible_travel",
        action="require_mfa",
        severity="high",
    )
    ruleset_cache_clear()


def test_activity_is_judged_against_the_baseline_without_changing_it(
    world, person, redis_client
) -> None:
    far_away_rule()
    http = browser(ip=PARIS)
    session = sign_in(http, person)
    baseline = redis_client.hgetall(f"tessera:threat:baseline:{person.pk}")
    payload = activity_payload(
        SessionActivity(
            at=timezone.now() + dt.timedelta(minutes=30),
            kind="userinfo",
            user_id=person.pk,
            session_id=session.pk,
            ip=TOKYO,
            user_agent="Tessera-App/2.1 (iOS 18)",
            client_id="app",
            public_client=True,
        ),
        located=True,
    )
    with recorded() as events:
        decision = activity_assess(payload)
    assert decision is not None
    assert decision.action == Action.REQUIRE_MFA
    assert "stolen-token-far-away" in decision.rules
    assert {"impossible_travel", "new_country"} <= set(decision.flags)
    [assessed] = [e for e in events if e.event_type == "threat.assessed"]
    assert assessed.metadata["kind"] == "userinfo"
    assert assessed.metadata["ip"] == TOKYO
    assert assessed.metadata["country"] == "JP"
    # Asynchronous require_mfa: the next sign-in proves a second factor; this session ends.
    person.refresh_from_db()
    assert person.mfa_required
    assert person.mfa_required_by == "threat"
    session.refresh_from_db()
    assert session.ended_at is not None
    assert session.end_reason == "threat"
    # An activity is not a sign-in: the baseline learned nothing from Tokyo.
    assert redis_client.hgetall(f"tessera:threat:baseline:{person.pk}") == baseline


def test_an_ended_session_or_a_gone_person_leaves_nothing_to_judge(world, person) -> None:
    http = browser(ip=PARIS)
    session = sign_in(http, person)
    LoginSession.objects.filter(pk=session.pk).update(ended_at=timezone.now())
    payload = activity_payload(
        SessionActivity(
            at=timezone.now(),
            kind="refresh",
            user_id=person.pk,
            session_id=session.pk,
            ip=TOKYO,
            user_agent="x",
        )
    )
    assert activity_assess(payload) is None
    User.objects.filter(pk=person.pk).update(is_active=False)
    assert activity_assess({**payload, "session_id": None}) is None


@pytest.mark.django_db(transaction=True)  # the worker reads what the test committed
def test_a_refresh_token_used_from_the_other_side_of_the_world_is_answered_by_the_worker(
    world, person, celery_worker
) -> None:
    far_away_rule()
    http = browser(ip=PARIS)
    session = sign_in(http, person)  # learns Paris, now
    app = registered(person, public=True)
    pkce = new_pkce()
    code = Flow(http, app).code(pkce)
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                "code_verifier": pkce.verifier, "client_id": app.client_id}  # fmt: skip
    answer = form_post(http, TOKEN, exchange)  # from Paris: nothing handed over
    assert answer.status_code == 200, answer.content
    thief = HttpClient(REMOTE_ADDR=TOKYO, HTTP_USER_AGENT="Tessera-App/2.1 (iOS 18)")
    refresh = {"grant_type": "refresh_token", "refresh_token": answer.json()["refresh_token"],
               "client_id": app.client_id}  # fmt: skip
    # The refresh is answered at once (the judgement must not slow it) ...
    assert form_post(thief, TOKEN, refresh).status_code == 200
    # ... and the worker ends the session and asks a second factor at the next sign-in.
    wait_for(
        lambda: LoginSession.objects.filter(pk=session.pk, ended_at__isnull=False).exists(),
        WAIT,
        "the worker ended the session used from Tokyo",
    )
    session.refresh_from_db()
    assert session.end_reason == "threat"
    person.refresh_from_db()
    assert person.mfa_required
