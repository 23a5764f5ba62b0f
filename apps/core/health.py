"""Dependency checks behind /readyz and the console's status page.

Two kinds (docs/operations.md, "What /readyz says"). A check that *gates readiness* is about
this process's own ability to answer correctly (its database connection, its revocation
mirror, its signing keys, its journal): one down makes /readyz 503, and the orchestrator
sends the pod no traffic. A check that does not gate is about a shared, asynchronous part
(Redis for caches and limits, the broker, the worker and beat, ClickHouse, the audit
backlog): down, it makes /readyz `degraded` with 200, since taking every pod out of service
would not bring it back; the metrics' gauges and the alert rules page on those.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
# Below this much free space on the journal's volume an event may no longer be appended.
JOURNAL_MIN_FREE_BYTES = 1024 * 1024


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
    gates: bool = True  # down makes /readyz 503 (this pod cannot serve), else `degraded`

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {
            "status": ("degraded" if self.degraded else "up") if self.up else "down",
            "gates_readiness": self.gates,
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


def _journal() -> str:
    """This process can append to its audit journal: a request whose event cannot be
    journaled is refused with 503 (apps/core/journal.py), so such a pod must get no traffic."""
    if not settings.AUDIT_JOURNAL:
        return "off: each event is inserted in the database"
    directory = Path(settings.AUDIT_JOURNAL_DIR)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the journal's first file does
    with tempfile.TemporaryFile(dir=directory, prefix=".readyz-") as probe:  # unnamed: O_TMPFILE
        probe.write(b"\n")
        probe.flush()
    free = shutil.disk_usage(directory).free
    if free < JOURNAL_MIN_FREE_BYTES:
        raise LookupError(f"{free} bytes free on {directory}: events cannot be journaled")
    return f"{free // 2**20} MiB free"


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


def _run(name: str, check: Callable[[], str], gates: bool) -> CheckResult:
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
    return CheckResult(name, up, elapsed, detail, degraded, gates)


def readiness() -> list[CheckResult]:
    """Each configured check with its state, and whether it gates readiness; ClickHouse and
    the audit backlog only when CLICKHOUSE_URL is set (without it the outbox is the audit
    store, not a backlog)."""
    checks: list[tuple[str, Callable[[], str], bool]] = [
        ("database", _database, True),
        ("redis", _redis, False),
        ("broker", _broker, False),
        ("worker", _worker, False),
        # Fail closed: a mirror not current refuses every access token (revocation.py), unless
        # IDP_REVOCATION_FAIL_OPEN accepts them, when it is a degraded mode like the others.
        ("revocation", _revocation, not settings.REVOCATION_FAIL_OPEN),
        ("journal", _journal, True),
    ]
    if settings.CLICKHOUSE_URL:
        checks += [("clickhouse", _clickhouse, False), ("audit", _audit, False)]
    # Checks of higher apps (a port: core imports none of them), e.g. the rate limiter's.
    checks += [
        (name, import_string(str(check["check"])), bool(check["gates"]))
        for name, check in settings.READINESS_CHECKS.items()
    ]
    return [_run(name, check, gates) for name, check, gates in checks]


def readiness_status(results: list[CheckResult]) -> str:
    """`unavailable` when a check that gates readiness is down; `degraded` when another is
    down or a part serves in a reduced mode; else `ready`."""
    if any(not r.up and r.gates for r in results):
        return "unavailable"
    if any(not r.up or r.degraded for r in results):
        return "degraded"
    return "ready"
