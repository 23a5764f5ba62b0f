"""The assessor behind the port: real Redis history, threat.assessed in the journal (no SQL
statement at the attempt), and with Redis down a decision from the attempt alone."""

from __future__ import annotations

import datetime as dt
import signal
import uuid
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.risk import Action, LoginContext
from apps.threat.port import ThreatAssessor
from apps.threat.ruleset import Ruleset
from apps.threat.ruleset import RuleSpec as Rule
from tests.events import recorded
from tests.servers import Redis

pytestmark = pytest.mark.django_db

RULES = Ruleset.of(
    [
        Rule("scripts", "headless_ua", "require_mfa", "medium"),
        Rule("hammering", "failures_user_1h >= 2", "require_mfa", "medium"),
    ]
)


def attempt(**changes: object) -> LoginContext:
    values: dict[str, object] = {
        "at": dt.datetime.now(dt.UTC),
        "email": "ada@example.com",
        "ip": "203.0.113.7",
        "user_agent": "curl/8.5",
        "success": False,
        "user_id": uuid.uuid4(),
    }
    values.update(changes)
    return LoginContext(**values)  # type: ignore[arg-type]


@pytest.mark.django_db(transaction=True)  # as at sign-in: no transaction around the attempt
def test_an_attempt_is_judged_and_recorded_without_a_sql_statement() -> None:
    assessor = ThreatAssessor(rules=lambda: RULES)
    assessor.assess(attempt())
    with recorded() as events, CaptureQueriesContext(connection) as queries:
        decision = assessor.assess(attempt())
        statements = [q["sql"][:200] for q in queries]
    assert statements == []
    assert decision.action == Action.REQUIRE_MFA
    assert decision.rules == ("hammering", "scripts")  # the ruleset's order: severity, name
    [event] = events
    assert event.event_type == "threat.assessed"
    assert event.metadata["score"] == decision.score
    assert event.metadata["rules"] == ["hammering", "scripts"]
    assert event.metadata["reasons"][0]["signal"] == "headless_ua"
    assert "history" not in event.metadata


@pytest.fixture
def own_redis(tmp_path, settings) -> Iterator[Redis]:
    """A Redis of this test's own as the application's (the suite's stays up for others)."""
    server = Redis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url(0)  # apps.core.redis.get_redis() follows it
    yield server
    server.stop(signal.SIGKILL)


def test_with_redis_down_the_attempt_alone_decides(own_redis, caplog) -> None:
    assessor = ThreatAssessor(rules=lambda: RULES)
    assessor.assess(attempt())
    own_redis.stop(signal.SIGKILL)
    with recorded() as events:
        decision = assessor.assess(attempt())
    assert decision.rules == ("scripts",)  # the failure count is not known: no history rule
    assert decision.extra["history"] == "unavailable"
    assert events[0].metadata["history"] == "unavailable"
    assert "threat history unavailable" in caplog.text


def test_observing_activity_returns_at_once() -> None:
    from apps.core.risk import SessionActivity

    activity = SessionActivity(
        at=dt.datetime.now(dt.UTC),
        kind="refresh",
        user_id=uuid.uuid4(),
        session_id=None,
        ip="203.0.113.7",
        user_agent="curl/8",
    )
    with recorded() as events:
        assert ThreatAssessor(rules=lambda: RULES).observe_activity(activity) is None
    assert events == []
