"""Each real part of the test environment is used for real (foundation issue)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest
from django.db import connection

from apps.core.events import EventType, emit
from apps.core.health import HEARTBEAT_KEY
from apps.core.tasks import heartbeat


@pytest.mark.django_db
def test_emitted_event_is_read_back_from_postgresql() -> None:
    event_id = emit(EventType.USER_CREATED, user_id="u-1", metadata={"via": "test"})

    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT event_type, user_id, metadata->>'via' FROM core_security_event WHERE id = %s",
            [event_id],
        )
        assert cursor.fetchone() == ("user.created", "u-1", "test")


def test_celery_task_round_trips_through_broker_and_worker(celery_worker, redis_client) -> None:
    before = time.time()

    result = heartbeat.apply_async(ignore_result=False).get(timeout=30)

    assert result >= before
    assert float(redis_client.get(HEARTBEAT_KEY)) == pytest.approx(result)


def test_clickhouse_row_is_queried_back(clickhouse_client) -> None:
    clickhouse_client.execute("DROP TABLE IF EXISTS probe")
    clickhouse_client.execute(
        "CREATE TABLE probe (id UInt64, note String, at DateTime) ENGINE = MergeTree ORDER BY id"
    )
    rows = [
        (1, "one", datetime(2026, 1, 1, tzinfo=UTC)),
        (2, "two", datetime(2026, 1, 2, tzinfo=UTC)),
    ]

    clickhouse_client.execute("INSERT INTO probe (id, note, at) VALUES", rows)

    assert clickhouse_client.execute("SELECT id, note, toDate(at) FROM probe ORDER BY id") == [
        (1, "one", date(2026, 1, 1)),
        (2, "two", date(2026, 1, 2)),
    ]
