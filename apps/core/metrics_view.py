"""/metrics: the counters of every server process of this host (apps/core/metrics.py) and
gauges read when Prometheus scrapes, for authorized scrapers only.

Who may scrape: the bearer token in IDP_METRICS_TOKEN_FILE (RFC 6750 §2.1), compared in
constant time and read again at each scrape (rotation without restart); without the setting
/metrics answers 404. A token, not a second port: Tessera's one listener already has TLS and
its place in every deployment (Compose, Kubernetes Service, a proxy), Prometheus sends a token
from a file (`authorization.credentials_file`, a ServiceMonitor's `authorization` Secret),
and a port of its own would have to be served by every granian worker and kept off the
public network separately in each deployment.

The endpoint is answered by a middleware right after the request context and the security
headers (so the scrape is logged, counted and gets the headers every response has) and before
the rest: the Host a scraper sends is a pod's IP, which
ALLOWED_HOSTS rightly refuses elsewhere, and nothing here builds a URL from it.

Gauges read at scrape time are cheap (one Redis pipeline, two indexed reads of the database,
a stat of the journal folder, a pub/sub round trip) and never fail the scrape: a dependency
that does not answer within IDP_HEALTH_CHECK_TIMEOUT is tessera_dependency_up 0, and the
gauges it would have given are left out rather than reported as 0.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from apps.core import cache, metrics, revocation, views
from apps.core.health import AUDIT_BACKLOG_COUNT_LIMIT, HEARTBEAT_KEY
from apps.core.models import JournalCheckpoint, SecurityEvent
from apps.core.redis import get_redis

log = logging.getLogger("tessera.metrics")

PATH = "/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ROUTE = "metrics"  # the route label of the scrapes themselves
# kombu's Redis transport keeps a queue in one list per priority step (the base name holds
# priority 0, the default); the other steps' lists are named name + "\x06\x16" + step.
_PRIORITY_STEPS = ("3", "6", "9")
_PRIORITY_SEPARATOR = "\x06\x16"


# --- who may scrape --------------------------------------------------------------------------


def _expected_token() -> bytes | None:
    path = settings.METRICS_TOKEN_FILE
    if path is None:
        return None
    try:
        token = Path(path).read_bytes().strip()
    except OSError as error:
        log.error("metrics token file unreadable; scrapes refused", extra={"error": str(error)})
        return b""
    return token if len(token) >= 32 else b""  # as settings ask


def authorized(request: HttpRequest) -> bool | None:
    """None: metrics are off. Otherwise whether the request carries the token."""
    expected = _expected_token()
    if expected is None:
        return None
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not expected:
        return False
    return hmac.compare_digest(presented.strip().encode(), expected)


class MetricsEndpointMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != PATH:
            return self.get_response(request)
        request.route_name = ROUTE  # type: ignore[attr-defined]
        allowed = authorized(request)
        if allowed is None:  # off: the same 404 as any URL we do not serve
            return views.error_response(request, 404)
        if not allowed:
            response = _plain(401, "a bearer token is required to read metrics\n")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        if request.method not in ("GET", "HEAD"):
            response = _plain(405, "GET only\n")
            response["Allow"] = "GET, HEAD"
            return response
        response = HttpResponse(exposition(), content_type=CONTENT_TYPE)
        response["Cache-Control"] = "no-store"
        return response


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


# --- what is exposed -------------------------------------------------------------------------


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    if metrics.multiprocess():
        registry.register(_HostFiles(settings.METRICS_DIR))
    else:
        registry.register(_Local())
    registry.register(ScrapeGauges())
    return generate_latest(registry)


class _HostFiles(Collector):
    """Every role's files merged: web, worker, beat and mTLS processes' counters add up."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def collect(self) -> Iterator[Metric]:
        files = metrics.directory_files(self.root)
        yield from MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]


class _Local(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from metrics.LOCAL.collect()


class ScrapeGauges(Collector):
    """Each part reports what it knows; one that fails says so in tessera_dependency_up."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "tessera_dependency_up",
            "Whether a dependency answered this scrape (1) or not (0).",
            labels=["dependency"],
        )
        took = GaugeMetricFamily(
            "tessera_scrape_part_seconds",
            "Seconds each part of this scrape took.",
            labels=["part"],
        )
        gauges: list[Metric] = []
        # Each part appends what it learns before it may fail: a mirror that is not current
        # still reports tessera_revocation_mirror_current 0.
        parts: list[tuple[str, Callable[[list[Metric]], None]]] = [
            ("redis", _redis_gauges),
            ("broker", _queue_gauges),
            ("database", _database_gauges),
            ("revocation", _revocation_gauges),
        ]
        for name, part in parts:
            started = time.perf_counter()
            try:
                part(gauges)
                up.add_metric([name], 1)
            except Exception as error:  # a scrape reports a dependency down, never fails
                log.warning("metrics: %s did not answer", name, extra={"error": str(error)[:300]})
                up.add_metric([name], 0)
            took.add_metric([name], time.perf_counter() - started)
        _journal_gauges(gauges)
        yield up
        yield took
        yield from gauges


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _redis_gauges(gauges: list[Metric]) -> None:
    raw = get_redis().get(HEARTBEAT_KEY)
    if raw is None:
        return
    age = max(0.0, time.time() - float(raw))
    about = "Seconds since the Celery worker's last heartbeat task ran."
    gauges.append(_gauge("tessera_worker_heartbeat_age_seconds", about, age))


def queue_names() -> list[str]:
    from celery import current_app as app  # the composition root's (idp.celery), unimported

    names = {app.conf.task_default_queue}
    for route in (app.conf.task_routes or {}).values():
        if isinstance(route, dict) and route.get("queue"):
            names.add(route["queue"])
    return sorted(names)


def _queue_gauges(gauges: list[Metric]) -> None:
    from celery import current_app as app

    depth = GaugeMetricFamily(
        "tessera_celery_queue_length",
        "Tasks waiting in each Celery queue of the broker (every priority step).",
        labels=["queue"],
    )
    names = queue_names()
    conn: Any = app.pool.acquire(block=True, timeout=settings.HEALTH_CHECK_TIMEOUT)
    with conn:
        conn.ensure_connection(max_retries=1, timeout=settings.HEALTH_CHECK_TIMEOUT)
        pipe = conn.default_channel.client.pipeline(transaction=False)
        for name in names:
            for key in (name, *(f"{name}{_PRIORITY_SEPARATOR}{s}" for s in _PRIORITY_STEPS)):
                pipe.llen(key)
        lengths = pipe.execute()
    steps = 1 + len(_PRIORITY_STEPS)
    for index, name in enumerate(names):
        depth.add_metric([name], sum(lengths[index * steps : (index + 1) * steps]))
    gauges.append(depth)


def _database_gauges(gauges: list[Metric]) -> None:
    """The journals' undrained bytes, and with ClickHouse the outbox still to ship."""
    sizes = _journal_sizes()
    if sizes:
        drained = dict(
            JournalCheckpoint.objects.filter(journal__in=list(sizes)).values_list(
                "journal", "drained_bytes"
            )
        )
        pending = sum(max(0, size - drained.get(name, 0)) for name, size in sizes.items())
    else:
        pending = 0
    gauges.append(_gauge(
        "tessera_audit_journal_pending_bytes",
        "Bytes of this host's event journals not yet drained into the outbox.", pending,
    ))  # fmt: skip
    if settings.CLICKHOUSE_URL:
        # Bounded like /readyz's check: exact up to the limit, cheap whatever the backlog.
        count = SecurityEvent.objects.all()[: AUDIT_BACKLOG_COUNT_LIMIT + 1].count()
        gauges.append(_gauge(
            "tessera_audit_outbox_events",
            f"Events waiting in the outbox to be shipped to ClickHouse (counted up to "
            f"{AUDIT_BACKLOG_COUNT_LIMIT + 1}).", count,
        ))  # fmt: skip
        oldest = SecurityEvent.objects.order_by("occurred_at").values_list(
            "occurred_at", flat=True
        )[:1]
        first = next(iter(oldest), None)
        age = max(0.0, (timezone.now() - first).total_seconds()) if first else 0.0
        gauges.append(_gauge(
            "tessera_audit_shipping_lag_seconds",
            "Age of the oldest event not yet shipped to ClickHouse (0 when none waits).", age,
        ))  # fmt: skip


def _journal_sizes() -> dict[str, int]:
    sizes: dict[str, int] = {}
    directory = Path(settings.AUDIT_JOURNAL_DIR)
    if not directory.is_dir():
        return sizes
    for path in directory.glob("*.journal"):
        try:
            sizes[path.name] = path.stat().st_size
        except OSError:
            continue  # drained and removed since the listing
    return sizes


def _journal_gauges(gauges: list[Metric]) -> None:
    gauges.append(_gauge(
        "tessera_audit_journal_bytes",
        "Bytes of this host's event journal files (drained or not; no database needed).",
        sum(_journal_sizes().values()),
    ))  # fmt: skip


# --- revocation mirror lag -------------------------------------------------------------------


class _Probe:
    """A message on the cache channel, timed from PUBLISH to its delivery to this process's
    subscriber thread: the delay with which a revocation reaches this process's mirror."""

    name = "metrics-probe"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}

    def measure(self, timeout: float) -> float | None:
        key = uuid.uuid4().hex
        arrived = threading.Event()
        with self._lock:
            self._waiting[key] = arrived
        try:
            started = time.perf_counter()
            get_redis().publish(cache.CHANNEL, f"{self.name} {key}")
            if not arrived.wait(timeout):
                return None
            return time.perf_counter() - started
        finally:
            with self._lock:
                self._waiting.pop(key, None)

    def on_message(self, key: str) -> None:
        with self._lock:
            arrived = self._waiting.get(key)
        if arrived is not None:
            arrived.set()

    def on_subscribed(self) -> None:
        pass

    def on_lost(self) -> None:
        pass

    def prune(self) -> None:
        pass


_probe = _Probe()
cache.bus.register(_probe)


def _revocation_gauges(gauges: list[Metric]) -> None:
    current = not revocation.mirror_state()
    gauges.append(_gauge(
        "tessera_revocation_mirror_current",
        "Whether the scraped process's revocation mirror follows Redis (0: tokens refused).",
        1 if current else 0,
    ))  # fmt: skip
    if not current:
        raise LookupError(f"revocation mirror not current: {revocation.mirror_state()}")
    lag = _probe.measure(float(settings.HEALTH_CHECK_TIMEOUT))
    if lag is None:
        raise LookupError("the probe did not come back within the health-check timeout")
    gauges.append(_gauge(
        "tessera_revocation_mirror_lag_seconds",
        "Seconds a message on the revocation channel took to reach the scraped process.", lag,
    ))  # fmt: skip
