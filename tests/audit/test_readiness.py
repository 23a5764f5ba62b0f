"""/readyz's audit check: the outbox backlog and the age of its oldest event, down once that
event has waited past AUDIT_BACKLOG_MAX_AGE for ClickHouse. It does not gate readiness (the
backlog is every pod's): down, /readyz says `degraded` with 200, and the alert rules page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.shipping import outbox_drain
from apps.core.models import SecurityEvent
from apps.keys import keys
from tests.audit.conftest import emit_many


def _audit_check(client) -> tuple[int, dict[str, str]]:
    response = client.get("/readyz")
    check = response.json()["checks"]["audit"]
    assert check["gates_readiness"] is False
    return response.status_code, check


def _state(check: dict[str, str]) -> tuple[str, int]:
    match = re.search(r"backlog=(\d+\+?) oldest_age_s=(\d+)", check["detail"])
    assert match, check
    return match.group(1), int(match.group(2))


@pytest.mark.django_db(transaction=True)
def test_readyz_reports_the_backlog_and_is_degraded_once_clickhouse_is_down_too_long(
    client, servers, audit_clickhouse, settings
) -> None:
    settings.AUDIT_BACKLOG_MAX_AGE = 60
    keys.jwks()  # else /readyz's signing_keys check creates the keys, and their events
    outbox_drain(batch_size=100)
    _, check = _audit_check(client)
    assert check["status"] == "up"
    assert _state(check) == ("0", 0)

    servers.clickhouse.stop()
    emit_many(3)
    assert outbox_drain(batch_size=10) == 0
    _, check = _audit_check(client)
    assert check["status"] == "up"  # within the max age: a short outage is not an alarm
    assert _state(check) == ("3", 0)

    # The oldest event has now waited 90 s (as if ClickHouse had been down that long).
    oldest = SecurityEvent.objects.order_by("occurred_at").values_list("pk", flat=True)[0]
    SecurityEvent.objects.filter(pk=oldest).update(
        occurred_at=timezone.now() - timedelta(seconds=90)
    )
    status, check = _audit_check(client)
    assert status == 200  # the pods stay in service: sign-in and tokens need no ClickHouse
    assert client.get("/readyz").json()["status"] == "degraded"
    assert check["status"] == "down"
    backlog, age = _state(check)
    assert (backlog, 90 <= age < 120) == ("3", True)
    assert "more than 60s" in check["detail"]

    servers.clickhouse.start()
    assert outbox_drain(batch_size=10) == 3
    _, check = _audit_check(client)
    assert check["status"] == "up"
    assert _state(check) == ("0", 0)


@pytest.mark.django_db
def test_readyz_counts_a_large_backlog_only_up_to_its_bound(client, audit_clickhouse) -> None:
    from apps.core.health import AUDIT_BACKLOG_COUNT_LIMIT

    emit_many(AUDIT_BACKLOG_COUNT_LIMIT + 1)
    _, check = _audit_check(client)
    assert _state(check)[0] == f"{AUDIT_BACKLOG_COUNT_LIMIT}+"
