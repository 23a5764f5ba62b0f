"""Dependency checks behind /readyz and the console's status page."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.core import revocation
from apps.core.clickhouse import get_clickhouse
from apps.core.models import SecurityEvent
from apps.core.redis import get_redis

HEARTBEAT_KEY = "tessera:worker:heartbeat"
# The audit check counts the outbox up to this many rows ("10000+" beyond): exact where it
# matters, and cheap whatever the backlog.
AUDIT_BACKLOG_COUNT_LIMIT = 10_000


class Degraded(Exception):
    """Raised by a check whose part works in a reduced mode (e.g. rate limits kept per process
    while Redis is unreachable): the check is up, and /readyz says `degraded`."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    up: bool
    latency_ms: float
    detail: str = ""
    degraded: bool = False

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {
            "status": ("degraded" if self.degraded else "up") if self.up else "down",
            "latency_ms": self.latency_ms,
        }
        if self.detail:
            result["detail"] = self.detail
        return result


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _redis() -> str:
    get_redis().ping()
    return ""


def _broker() -> str:
    from celery import current_app as app  # the composition root's (idp.celery), unimported

    # A pooled connection: a probe every few seconds must not open a new one each time.
    conn: Any = app.pool.acquire(block=True, timeout=settings.HEALTH_CHECK_TIMEOUT)
    with conn:
        conn.ensure_connection(max_retries=1, timeout=settings.HEALTH_CHECK_TIMEOUT)
        conn.default_channel.client.ping()
    return ""


def _revocation() -> str:
    problem = revocation.mirror_state()
    if problem:
        raise LookupError(f"revocation list not current ({problem}); tokens are refused")
    return ""


def _clickhouse() -> str:
    get_clickhouse().execute("SELECT 1")
    return ""


def _audit() -> str:
    """The outbox the audit shipper has not moved to ClickHouse yet: how many events and how
    old the oldest (from the occurred_at index). Down when that one has waited longer than
    AUDIT_BACKLOG_MAX_AGE: ClickHouse, the worker or beat has stopped shipping."""
    count = SecurityEvent.objects.all()[: AUDIT_BACKLOG_COUNT_LIMIT + 1].count()
    backlog = f"{AUDIT_BACKLOG_COUNT_LIMIT}+" if count > AUDIT_BACKLOG_COUNT_LIMIT else str(count)
    oldest = SecurityEvent.objects.order_by("occurred_at").values_list("occurred_at", flat=True)
    first = oldest.first()
    age = max(0.0, (timezone.now() - first).total_seconds()) if first else 0.0
    state = f"backlog={backlog} oldest_age_s={age:.0f}"
    if age > settings.AUDIT_BACKLOG_MAX_AGE:
        raise LookupError(
            f"{state}: the oldest event has waited more than {settings.AUDIT_BACKLOG_MAX_AGE}s "
            "to be shipped to ClickHouse"
        )
    return state


def _worker() -> str:
    raw = get_redis().get(HEARTBEAT_KEY)
    if raw is None:
        raise LookupError("no heartbeat yet: is the Celery worker (and beat) running?")
    age = time.time() - float(raw)
    if age > settings.WORKER_HEARTBEAT_MAX_AGE:
        raise LookupError(f"last heartbeat {age:.0f}s ago: the worker or beat has stopped")
    return f"last heartbeat {age:.0f}s ago"


def _run(name: str, check: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    degraded = False
    try:
        detail = check()
        up = True
    except Degraded as reduced:
        detail, up, degraded = str(reduced)[:300], True, True
    except Exception as exc:  # a health check reports every failure instead of raising it
        detail, up = f"{type(exc).__name__}: {exc}"[:300], False
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    return CheckResult(name, up, elapsed, detail, degraded)


def readiness() -> list[CheckResult]:
    """Each configured dependency with its state; ClickHouse and the audit backlog only when
    CLICKHOUSE_URL is set (without it the outbox is the audit store, not a backlog)."""
    checks: list[tuple[str, Callable[[], str]]] = [
        ("database", _database),
        ("redis", _redis),
        ("broker", _broker),
        ("worker", _worker),
        ("revocation", _revocation),
    ]
    if settings.CLICKHOUSE_URL:
        checks += [("clickhouse", _clickhouse), ("audit", _audit)]
    # Checks of higher apps (a port: core imports none of them), e.g. the rate limiter's.
    checks += [(name, import_string(path)) for name, path in settings.READINESS_CHECKS.items()]
    return [_run(name, check) for name, check in checks]
